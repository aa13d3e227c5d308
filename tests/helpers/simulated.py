"""A simulated executor for searches: each job ends at once with a result.json whose figures a
landscape gives for the run's swept values (a known optimum, seeded noise), through the real
scheduler, collector, manifest and search. No engine, no container.

Also imported by `benchmarks/search_efficiency.py`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from helpers.results import Figures, make_result
from helpers.scheduler import InstantExecutor, quiet_host, stub_preflight
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.backends import BACKENDS
from llenergymeasure.contract.pruning import SLICES
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import ProgressEvent, WorkPaths, append_jsonl
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import JobDone, RunJob, StudyAt
from llenergymeasure.orchestrator.machine.container import ContainerExit, KillReason
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger
from llenergymeasure.orchestrator.machine.lifecycle import Machine
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.orchestrator.planned import planned_study
from llenergymeasure.orchestrator.schedule.preflight import RunOptions
from llenergymeasure.orchestrator.schedule.scheduler import StudyScheduler
from llenergymeasure.orchestrator.schedule.study_folder import StudyFolder, open_study
from llenergymeasure.orchestrator.schedule.study_run import run_source
from llenergymeasure.study import work_files

# swept values -> the run's figures, or a text: the run crashes with it
Landscape = Callable[[dict[str, Any]], "Figures | str"]


class SimulatedExecutor(InstantExecutor):
    """Ends each job at once: exit 0 with the landscape's result, or exit 1 (a crash)."""

    landscape: Landscape = staticmethod(lambda swept: Figures(tokens_per_s=100.0))  # type: ignore[assignment]

    def start(self, job: RunJob) -> None:
        self.started.append(job)
        self.end(job, lambda: self._container(job))

    def _container(self, job: RunJob) -> ContainerExit:
        return self._ended_with(job, type(self).landscape(job.run.swept))

    def _ended_with(self, job: RunJob, figures: Figures | str) -> ContainerExit:
        if isinstance(figures, str):
            (job.workdir / WorkPaths.CONTAINER_LOG).write_text(figures + "\n")
            return ContainerExit("c", 1, False, None, 0.0, 0.0)
        request = RunRequest.model_validate_json((job.workdir / WorkPaths.CONFIG).read_bytes())
        result = make_result(request.context, job.run.config, figures)
        work_files.write(job.workdir, WorkPaths.RESULT, result)
        return ContainerExit("c", 0, False, None, 0.0, 0.0)


class SlicedExecutor(SimulatedExecutor):
    """Each job's container reports its window's ten slices at once (`slice_figures`: the
    landscape's figures at every slice), then runs for one more look of the scheduler: ended
    with its result then, or killed for the interrupt if it was cancelled meanwhile. The
    landscape is asked once per run."""

    def __init__(self, at: StudyAt, max_attempts: int = 1) -> None:
        super().__init__(at, max_attempts)
        self.held: dict[str, RunJob] = {}
        self.cancelled: list[str] = []
        self.figures: dict[str, Figures | str] = {}
        self._looked: set[str] = set()  # held jobs the scheduler has looked at once

    def slice_figures(self, job: RunJob, figures: Figures, step: int) -> dict[str, float]:
        """The window so far at slice `step`: here, the whole window's figures."""
        out = {"throughput.output_tokens_per_s": figures.tokens_per_s}
        if figures.j_per_token:
            out["energy.j_per_output_token"] = figures.j_per_token
            out["energy.output_tokens_per_j"] = 1 / figures.j_per_token
        return out

    def start(self, job: RunJob) -> None:
        self.started.append(job)
        figures = self.figures[job.run.run_id] = type(self).landscape(job.run.swept)
        if isinstance(figures, Figures):
            for step in range(1, SLICES + 1):
                sliced = self.slice_figures(job, figures, step)
                event = ProgressEvent(event="slice", i=step, n=SLICES, figures=sliced)
                append_jsonl(job.workdir / WorkPaths.PROGRESS, event)
        self.held[job.run.run_id] = job

    def _container(self, job: RunJob) -> ContainerExit:
        figures = self.figures.pop(job.run.run_id)
        return self._ended_with(job, figures)

    def cancel(self, run_id: str, *, force: bool = False) -> None:
        self.cancelled.append(run_id)
        job = self.held.pop(run_id, None)
        if job is not None:
            self.end(job, lambda: ContainerExit("c", 143, False, KillReason.INTERRUPT, 0.0, 1.0))

    def wait(self, timeout_s: float) -> list[JobDone]:
        done = super().wait(timeout_s)
        for run_id, job in list(self.held.items()):
            if run_id in self._looked:
                del self.held[run_id]
                self.end(job, lambda job=job: self._container(job))
        self._looked = set(self.held)
        return done

    @property
    def in_flight(self) -> list[str]:
        return sorted(self.held) + super().in_flight


def executor_with(
    landscape: Landscape, base: type[SimulatedExecutor] = SimulatedExecutor
) -> type[SimulatedExecutor]:
    return type("Landscaped", (base,), {"landscape": staticmethod(landscape)})


@dataclass
class SearchRun:
    """One llem invocation of a search study on the simulated executor."""

    scheduler: StudyScheduler
    executor: SimulatedExecutor
    folder: StudyFolder
    notes: list[str] = field(default_factory=list)

    def run(self) -> int:
        try:
            return self.scheduler.run()
        finally:
            self.folder.manifest.close()


class _Notes(Display):
    """Keeps the notes; the progress lines go nowhere."""

    def __init__(self, notes: list[str]) -> None:
        super().__init__(Console(file=io.StringIO()))
        self.notes = notes

    def note(self, message: str) -> None:
        self.notes.append(message)


def search_run(
    tmp_path: Path,
    study: StudyConfig,
    landscape: Landscape,
    *,
    study_dir: Path | None = None,
    stop: StopState | None = None,
    options: RunOptions | None = None,
    executor: type[SimulatedExecutor] = SimulatedExecutor,
) -> SearchRun:
    """The scheduler of `study` (a search) on the simulated executor; `study_dir`: resume the
    study in that folder instead of starting one in tmp_path/study."""
    pre = stub_preflight(planned_study(tmp_path / "study.yaml", study))
    for backend in BACKENDS:  # one stub image stands for each backend's
        pre.images.setdefault(backend, pre.images["pytorch"])
    new = study_dir is None
    study_dir = study_dir or tmp_path / "study"
    study_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    display = _Notes(notes)
    folder = open_study(study_dir, new, pre, display)
    options = options or RunOptions()
    probes = quiet_host()
    at = StudyAt(
        study_dir,
        folder.manifest.record.study_id,
        study.execution,
        None,
        None,
        probes,
        display,
        Machine(probes, ledger=GpuLedger(tmp_path / "locks")),
    )
    executor = executor_with(landscape, executor)(at)
    source = run_source(folder, pre, options, display)
    scheduler = StudyScheduler(pre, folder, executor, display, stop or StopState(), options, source)
    return SearchRun(scheduler, executor, folder, notes)


def search_study(
    search: dict[str, Any], *, defaults: dict[str, Any] | None = None, **execution: Any
) -> StudyConfig:
    """A CPU study over the stub model with `search` and no gaps; `defaults` over the study's
    (e.g. `{"backend": "vllm"}` for a search of vllm.* keys)."""
    return StudyConfig.model_validate(
        {
            "name": "s",
            "defaults": {"model": "stub:m", "gpu_count": 0, **(defaults or {})},
            "execution": {
                "gap_between_experiments_s": 0,
                "gap_between_cycles_s": 0,
                **execution,
            },
            "search": search,
        }
    )


def trial_lines(study_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (study_dir / "manifest.jsonl").read_text().splitlines()
        if '"kind":"trial"' in line
    ]


def stopping_after(landscape: Landscape, stop: StopState, runs: int) -> Landscape:
    """The landscape, asking llem to stop (as Ctrl+C does) when its `runs`-th run is made."""
    count = 0

    def landscape_then_stop(swept: dict[str, Any]) -> Figures | str:
        nonlocal count
        count += 1
        if count == runs:
            stop.request()
        return landscape(swept)

    return landscape_then_stop


def next_suggestions_twice(study_dir: Path, max_open: int) -> list[list[dict[str, Any]]]:
    """What two llems rebuilt from the same record would queue next (the first one's asks are
    cut from the manifest before the second rebuilds it)."""
    from llenergymeasure.orchestrator.schedule.search.source import SearchSource
    from llenergymeasure.study.folder import StudyPaths
    from llenergymeasure.study.manifest import Manifest

    suggestions = []
    for _ in range(2):
        with Manifest.open(study_dir) as manifest:
            source = SearchSource(
                StudyPaths(study_dir).read_plan(),
                manifest,
                study_dir,
                inputs_dir=None,
                max_open=max_open,
                display=Display(),
            )
            heads = []
            while source.head() is not None:
                heads.append(source.take().swept)
            suggestions.append(heads)
        lines = (study_dir / "manifest.jsonl").read_text().splitlines(keepends=True)
        (study_dir / "manifest.jsonl").write_text("".join(lines[: len(lines) - 2 * len(heads)]))
    return suggestions
