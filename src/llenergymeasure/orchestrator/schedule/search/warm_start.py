"""Warm start (`search.warm_start`): an earlier search's trials told to this search's samplers
before their first ask.

A trial of an earlier study folder is told to a cell where the configuration the cell makes of
its parameters is the very configuration it ran (the same config hash: the same model, backend
and every setting), judged by this search's objectives and constraints from its result. Its
run must have run on this study's image for its backend (the same image id: the same engine
and libraries) and, on GPUs, on GPUs of the same name and driver as this host's; otherwise the
folder is refused with one message naming the difference, never told in part. What is told is
recorded in the manifest (`warm` lines) before the first ask, and --resume replays those lines
without reading the folders again.

Warm trials inform the sampler only: the stop rule, the incumbent and the race read this
search's own runs, measured here and now.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.config.search import SearchConfig
from llenergymeasure.errors import UserError
from llenergymeasure.results.load import RunData, load_study_results
from llenergymeasure.results.search import judge_run
from llenergymeasure.study.manifest_models import WarmRecord
from llenergymeasure.study.search_space import Cell


@dataclass(frozen=True)
class Environment:
    """What this study runs on, as the host knows it before its first run."""

    images: dict[str, str]  # backend -> image id
    gpus: list[tuple[str, str]] | None  # (name, driver) of the study's GPUs; None: not known


def warm_records(
    search: SearchConfig, cells: list[Cell], base: Path, environment: Environment
) -> tuple[list[WarmRecord], list[str]]:
    """The trials to tell, and a note per folder on what it gave."""
    records: list[WarmRecord] = []
    notes: list[str] = []
    for entry in search.warm_start:
        folder = Path(entry) if Path(entry).is_absolute() else base / entry
        found = _folder_records(search, cells, folder, environment, entry)
        records += found
        cells_told = sorted({r.cell for r in found})
        notes.append(
            f"search.warm_start {entry}: {len(found)} earlier trial(s) told to cell(s) "
            f"{', '.join(map(str, cells_told))}"
            if found
            else f"search.warm_start {entry}: none of its trials is a configuration of this "
            "search (the same model, backend and settings): nothing told"
        )
    return records, notes


def _folder_records(
    search: SearchConfig, cells: list[Cell], folder: Path, environment: Environment, entry: str
) -> list[WarmRecord]:
    data = load_study_results(folder)
    record = data.manifest.search
    if data.search is None or record is None:
        raise UserError(
            f"search.warm_start: {entry} is not a search's study folder",
            hint="name the folder of an earlier `search:` study (under its output_dir)",
        )
    by_id = {run.planned.run_id: run for run in data.runs}
    found: list[WarmRecord] = []
    for trial in record.trials:
        run = by_id.get(trial.run_id or "")
        if trial.reused or trial.config_hash is None or run is None or run.record is None:
            continue
        if run.record.status not in ("completed", "failed"):
            continue
        stopped = record.slices.get(run.planned.run_id)
        if stopped is not None and stopped.pruned is not None:
            continue  # stopped for trailing that search's other trials: no figure to tell
        for cell in cells:
            if cell.params_problem(trial.params) is not None:
                continue
            if cell.configure(trial.params).config_hash != trial.config_hash:
                continue
            mismatch = _mismatch(run, environment)
            if mismatch is not None:
                raise UserError(
                    f"search.warm_start: {entry}: run {run.planned.run_id} {mismatch}",
                    hint="warm-start only from searches run on the same image and GPUs, or "
                    "drop the folder from search.warm_start",
                )
            judgement = judge_run(search, run)
            found.append(
                WarmRecord(
                    cell=cell.index,
                    study_id=data.manifest.study_id,
                    run_id=run.planned.run_id,
                    params=trial.params,
                    config_hash=trial.config_hash,
                    values=judgement.told_values(),
                    violations=judgement.violations,
                    feasible=judgement.feasible,
                )
            )
    return found


def _mismatch(run: RunData, environment: Environment) -> str | None:
    """How the run's environment differs from this study's, in words; None: it matches."""
    backend = run.planned.config.backend
    theirs = run.record.image_id if run.record is not None else None
    ours = environment.images.get(backend)
    if theirs != ours:
        return f"ran on image {_short(theirs)}, this study's {backend} image is {_short(ours)}"
    result = run.result
    if result is None or not result.environment.gpus or environment.gpus is None:
        return None
    gpus = [(g.name, result.environment.driver_version or "") for g in result.environment.gpus]
    if any(gpu not in environment.gpus for gpu in gpus):
        return f"ran on {_gpus_text(gpus)}, this study's GPUs are {_gpus_text(environment.gpus)}"
    return None


def _short(image_id: str | None) -> str:
    return (image_id or "unknown")[:19]


def _gpus_text(gpus: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} (driver {driver})" for name, driver in sorted(set(gpus)))
