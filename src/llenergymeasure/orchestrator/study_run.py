"""`llem run` after its pre-flight: containers left by a dead llem removed, the study folder
opened (or resumed), signals routed, and the study runner on the local Docker executor.

The CLI owns what comes before (planning, showing the plan, the confirmation): see
`cli/run.py`; `preflight.py` resolves what the study runs with.
"""

from __future__ import annotations

from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executor import Executor, LocalDockerExecutor
from llenergymeasure.orchestrator.orphans import remove_orphans
from llenergymeasure.orchestrator.preflight import Preflight, RunOptions
from llenergymeasure.orchestrator.runner import StudyRunner
from llenergymeasure.orchestrator.slurm.executor import SlurmExecutor
from llenergymeasure.orchestrator.stop import StopState, handle_signals
from llenergymeasure.orchestrator.study_folder import (
    StudyFolder,
    locate_study,
    open_study,
    writer_lock,
)


def execute(pre: Preflight, options: RunOptions, display: Display) -> int:
    """Run (or resume) a pre-flighted study; the exit code: 0 all completed (or, detached, all
    submitted), 1 some failed, 130 interrupted. Releases the pre-flight's GPU locks however it
    ends."""
    slurm = pre.study.execution.executor == "slurm"
    try:
        if not slurm:  # a node's llem removes its own node's orphans
            removed = remove_orphans(pre.client)
            if removed:
                display.note(
                    f"removed {removed} container(s) left by a llem process that no longer runs"
                )
        study_dir, new = locate_study(pre, options, display)
        with writer_lock(study_dir):
            folder = open_study(study_dir, new, pre, display)
            with folder.manifest, handle_signals(StopState()) as stop:
                executor = _executor(pre, folder)
                return StudyRunner(pre, folder, executor, display, stop, options).run()
    finally:
        pre.release()


def _executor(pre: Preflight, folder: StudyFolder) -> Executor:
    execution = pre.study.execution
    if execution.executor == "slurm":
        return SlurmExecutor(folder.path, folder.manifest.record.study_id, execution)
    return LocalDockerExecutor(pre.client)
