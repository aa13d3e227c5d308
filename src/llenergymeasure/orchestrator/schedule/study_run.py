"""`llem run` after its pre-flight: the study folder opened (or resumed), signals routed, and
the scheduler on the study's executor.

The CLI (or the library's `run_study`) owns what comes before (planning, showing the plan, the
confirmation); `preflight.py` resolves what the study runs with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import StudyAt, executor_class
from llenergymeasure.orchestrator.machine import host_gpus
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger
from llenergymeasure.orchestrator.machine.lifecycle import Machine
from llenergymeasure.orchestrator.machine.locks import writer_lock
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.orchestrator.machine.stop import StopState, handle_signals
from llenergymeasure.orchestrator.schedule.preflight import Preflight, RunOptions
from llenergymeasure.orchestrator.schedule.scheduler import StudyScheduler
from llenergymeasure.orchestrator.schedule.sources import PlannedRuns, RunSource
from llenergymeasure.orchestrator.schedule.study_folder import (
    StudyFolder,
    locate_study,
    open_study,
    runs_to_do,
)
from llenergymeasure.study.manifest_models import WarmRecord
from llenergymeasure.study.search_space import Cell


@dataclass(frozen=True)
class Ran:
    study_dir: Path
    exit_code: int  # 0 all completed (or, detached, all submitted), 1 some failed, 130 stopped


def execute(
    pre: Preflight, options: RunOptions, display: Display, stop: StopState | None = None
) -> Ran:
    """Run (or resume) a pre-flighted study. Releases the pre-flight's host locks however it
    ends. Signal handlers are installed only in the main thread, and restored; `stop`: the
    caller's own (e.g. to stop the study from another thread). They are installed before the
    study folder is opened: a signal that comes while the manifest is being marked running is
    a stop request the loop records `interrupted`, never a KeyboardInterrupt that leaves it
    running."""
    try:
        with handle_signals(stop or StopState()) as stop:
            study_dir, new = locate_study(pre, options, display)
            with writer_lock(study_dir):
                folder = open_study(study_dir, new, pre, display)
                with folder.manifest:
                    return Ran(folder.path, _scheduled(pre, folder, options, display, stop))
    finally:
        pre.release()


def _scheduled(
    pre: Preflight, folder: StudyFolder, options: RunOptions, display: Display, stop: StopState
) -> int:
    """The study's loop on its executor, to its exit code."""
    execution = pre.study.execution
    if options.no_gaps:
        execution = execution.without_gaps()
    probes = HostProbes()
    at = StudyAt(
        study_dir=folder.path,
        study_id=folder.manifest.record.study_id,
        execution=execution,
        client=pre.client,
        cpu_groups=pre.cpu_groups,
        probes=probes,
        display=display,
        machine=Machine(probes, control=pre.gpu_control, ledger=GpuLedger(options.lock_dir)),
    )
    executor = executor_class(execution.executor.kind).open(at)
    source = run_source(folder, pre, options, display)
    return StudyScheduler(pre, folder, executor, display, stop, options, source).run()


def run_source(
    folder: StudyFolder, pre: Preflight, options: RunOptions, display: Display
) -> RunSource:
    """A grid's runs still to do, or the search that asks for its runs."""
    if folder.search is None:
        todo = runs_to_do(folder.manifest, folder.plan, options.retry_failed)
        return PlannedRuns(todo, len(folder.plan))
    from llenergymeasure.orchestrator.schedule.search.source import (
        SearchSource,  # Optuna: searches only
    )

    search = pre.study.search
    assert search is not None
    return SearchSource(
        folder.search,
        folder.manifest,
        folder.path,
        inputs_dir=pre.planned.source_dir,
        max_open=pre.study.execution.max_parallel,
        display=display,
        budget=search.budget,
        warm=_warm_finder(pre, display) if search.warm_start else None,
    )


def _warm_finder(pre: Preflight, display: Display) -> Callable[[list[Cell]], list[WarmRecord]]:
    """`search.warm_start`'s trials for the search's cells, judged against this study's
    environment (its images; its GPUs' names and driver, where the host reads them)."""
    from llenergymeasure.orchestrator.schedule.search.warm_start import (
        Environment,
        warm_records,
    )

    def find(cells: list[Cell]) -> list[WarmRecord]:
        gpus = None
        if pre.gpu_uuids:
            found = host_gpus.identities(sorted(pre.gpu_uuids))
            gpus = None if isinstance(found, str) else list(found.values())
        environment = Environment({b: image.id for b, image in pre.images.items()}, gpus)
        search = pre.study.search
        assert search is not None
        records, notes = warm_records(search, cells, pre.planned.source_dir, environment)
        for note in notes:
            display.note(note)
        return records

    return find
