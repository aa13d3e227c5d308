"""`llem run` after its pre-flight: the study folder opened (or resumed), signals routed, and
the scheduler on the study's executor.

The CLI (or the library's `run_study`) owns what comes before (planning, showing the plan, the
confirmation); `preflight.py` resolves what the study runs with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import StudyAt, executor_class
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

    return SearchSource(
        folder.search,
        folder.manifest,
        folder.path,
        inputs_dir=pre.planned.source_dir,
        max_open=pre.study.execution.max_parallel,
        display=display,
        budget=pre.study.search.budget if pre.study.search is not None else None,
    )
