"""Read a study folder: its plan, manifest, study file and each run's result or error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.errors import UserError
from llenergymeasure.study import work_files
from llenergymeasure.study.folder import StudyPaths, first_error, trusted_study_dir
from llenergymeasure.study.manifest import load_manifest
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.models import PlannedRun, SearchPlan
from llenergymeasure.study.search_space import study_runs
from llenergymeasure.study.untrusted import UntrustedFile


@dataclass(frozen=True)
class RunData:
    """One planned run with what it left behind."""

    planned: PlannedRun
    record: RunRecord | None
    result: ExperimentResult | None
    error: str | None
    work_dir: Path

    @property
    def outcome(self) -> str:
        """The manifest's outcome, or the run's status while it has none."""
        if self.record is None:
            return "pending"
        if self.record.outcome == "completed" and self.result is None:
            return "failed"  # result.json missing or no longer valid
        if self.record.outcome is not None:
            return self.record.outcome
        return self.record.status


@dataclass(frozen=True)
class StudyData:
    study_dir: Path
    manifest: StudyRecord
    runs: list[RunData]
    study_file: str | None
    search: SearchPlan | None = None  # a search study's plan: its search and cells

    @property
    def completed(self) -> list[RunData]:
        return [run for run in self.runs if run.result is not None]

    @property
    def has_serving(self) -> bool:
        """Whether any planned run is a serving run (mode: serving)."""
        return any(run.planned.config.mode == "serving" for run in self.runs)

    @property
    def swept_keys(self) -> list[str]:
        """Swept dimensions in the order the plan first names them."""
        keys: dict[str, None] = {}
        for run in self.runs:
            keys.update(dict.fromkeys(run.planned.swept))
        return list(keys)


def load_study_results(study_dir: Path) -> StudyData:
    """Load everything a study folder holds; a folder that is not a study is a UserError."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise UserError(f"{study_dir}: no such folder", hint="pass the folder of a study run")
    trusted_study_dir(study_dir)
    if not _is_study_folder(study_dir):
        raise UserError(
            f"{study_dir} is not a study folder "
            f"(it has no {StudyPaths.PLAN} and {StudyPaths.MANIFEST})",
            hint=_studies_inside(study_dir)
            or "pass <output_dir>/<study_id>, the folder `llem run` created",
        )
    try:
        manifest = load_manifest(study_dir)
    except (ValueError, ValidationError) as error:
        raise UserError(
            f"{study_dir / StudyPaths.MANIFEST}: unreadable manifest: {error}"
        ) from None
    plan, search = study_runs(study_dir, manifest)
    study_file = StudyPaths(study_dir).read_study_file()
    runs = [load_run(study_dir, planned, manifest.runs.get(planned.run_id)) for planned in plan]
    return StudyData(
        study_dir=study_dir, manifest=manifest, runs=runs, study_file=study_file, search=search
    )


def require_results(study: StudyData) -> None:
    """Commands that report figures need at least one completed run."""
    if not study.completed:
        counts: dict[str, int] = {}
        for run in study.runs:
            counts[run.outcome] = counts.get(run.outcome, 0) + 1
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        raise UserError(
            f"{study.study_dir}: no results yet ({states or 'no runs planned'})",
            hint="wait for a run to complete, or `llem run --resume` the study",
        )


def _is_study_folder(folder: Path) -> bool:
    return (folder / StudyPaths.PLAN).is_file() and (folder / StudyPaths.MANIFEST).is_file()


# How many entries of a folder that is not a study are looked at for the studies inside, and
# how many of those are named.
LOOKED_AT = 1000
NAMED = 5


def _studies_inside(folder: Path) -> str | None:
    """A folder of study folders (an output_dir): its studies, newest first, as a hint; None
    where it holds none. Links are not followed."""
    found: list[tuple[float, str]] = []
    try:
        for k, child in enumerate(folder.iterdir()):
            if k >= LOOKED_AT:
                break
            if not child.is_symlink() and child.is_dir() and _is_study_folder(child):
                found.append(((child / StudyPaths.MANIFEST).lstat().st_mtime, str(child)))
    except OSError:
        return None
    if not found:
        return None
    newest = [path for _, path in sorted(found, reverse=True)]
    if len(newest) == 1:
        return f"it holds one study folder: pass {newest[0]}"
    more = f" and {len(newest) - NAMED} more" if len(newest) > NAMED else ""
    return (
        f"it holds {len(newest)} study folders, newest first: {', '.join(newest[:NAMED])}"
        f"{more}; pass one of them"
    )


def load_run(study_dir: Path, planned: PlannedRun, record: RunRecord | None) -> RunData:
    """The manifest decides: a run's result is read only when it completed, or failed with
    stages kept (a server that died in a later stage); from its work folder through
    `work_files`, never `result_path` as recorded, so nothing outside it is read."""
    work_dir = study_dir / StudyPaths.EXPERIMENTS / planned.run_id
    result: ExperimentResult | None = None
    error = record.error if record is not None else None
    if record is not None and (record.outcome == "completed" or record.result_path):
        try:
            result = record.with_host_findings(work_files.read_result(work_dir))
        except FileNotFoundError:
            error = "result.json is missing"
        except UntrustedFile as refused:
            error = str(refused)
        except ValidationError as invalid:
            error = f"result.json fails the result schema: {first_error(invalid)}"
    if result is None and error is None:
        error = _error_report(work_dir)
    return RunData(planned=planned, record=record, result=result, error=error, work_dir=work_dir)


def _error_report(work_dir: Path) -> str | None:
    try:
        report = work_files.read_error(work_dir)
    except FileNotFoundError:
        return None
    except (UntrustedFile, ValidationError, ValueError):
        return "error.json is unreadable"
    return f"{report.type}: {report.message}"
