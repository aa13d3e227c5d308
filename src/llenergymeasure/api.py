"""The Python library: what `llem` does, called from a notebook or a pipeline.

    import llenergymeasure as llem
    result = llem.run_study("study.yaml")          # or a StudyConfig
    result.runs            # pandas: one row per run (results.csv)
    result.configurations  # pandas: one row per configuration, mean/CI over cycles
    result.failures        # the manifest records of the runs that did not complete

The command line is a thin layer over these functions. A problem the user can fix raises
`UserError` (message + hint; never SystemExit). `run_study` runs in the calling thread: signal
handlers are installed only in the main thread and restored on return; elsewhere pass a
`StopState` and `request()` it to stop the study. It may be called again in the same process.
"""

from __future__ import annotations

import io
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from llenergymeasure.config.loader import load_study
from llenergymeasure.config.study import CycleOrder, StudyConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import executor_class
from llenergymeasure.orchestrator.machine.stop import EXIT_INTERRUPTED, StopState
from llenergymeasure.orchestrator.planned import PlannedStudy, planned_study
from llenergymeasure.orchestrator.schedule.preflight import Preflight, RunOptions
from llenergymeasure.orchestrator.schedule.study_run import execute
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord

if TYPE_CHECKING:  # pandas, scipy and the results readers load only when results are read
    import pandas as pd

    from llenergymeasure.results.load import StudyData
    from llenergymeasure.results.search import SearchView

StudySource = str | Path | StudyConfig


@dataclass(frozen=True)
class StudyResult:
    """A study folder as its records say: the manifest, every run, every configuration. Each
    is read from the folder when first asked for (and kept): `llem run`, which needs only the
    exit code, never reads them."""

    study_dir: Path
    # What `llem run` exits with: 0 all completed, 1 some did not, 130 interrupted, None when
    # loaded from a folder rather than run.
    exit_code: int | None = None
    # The configurations' statistics leave out runs judged not valid (`load_results`).
    valid_only: bool = False

    @cached_property
    def data(self) -> StudyData:
        """The manifest and every run's records, as the readers below take them."""
        from llenergymeasure.results.load import load_study_results

        return load_study_results(self.study_dir)

    @property
    def manifest(self) -> StudyRecord:
        return self.data.manifest

    @cached_property
    def runs(self) -> pd.DataFrame:
        """One row per planned run, failed and pending ones included (results.csv)."""
        from llenergymeasure.results.tables import runs_frame

        return runs_frame(self.data)

    @cached_property
    def configurations(self) -> pd.DataFrame:
        """One row per configuration: counts, mean/std/CI/CV (summary.csv)."""
        from llenergymeasure.results.tables import summary_frame

        return summary_frame(self.data, self.runs, self.valid_only)

    @cached_property
    def search(self) -> SearchView | None:
        """A search: its trials, confirmation, winner per cell; None for a grid."""
        from llenergymeasure.results.search import search_view

        return search_view(self.data)

    @cached_property
    def trials(self) -> pd.DataFrame | None:
        """A search: one row per trial (trials.csv)."""
        from llenergymeasure.results.trials import trials_frame

        return trials_frame(self.search) if self.search is not None else None

    @property
    def status(self) -> str:
        return self.manifest.status

    @property
    def failures(self) -> list[RunRecord]:
        """The runs that ended without completing, with their outcome and error."""
        return [
            run
            for run in sorted(self.manifest.runs.values(), key=lambda r: r.run_index)
            if run.status in ("failed", "interrupted")
        ]


def validate(study: StudySource) -> StudyConfig:
    """The study read and checked (file:line messages); UserError at the first problem."""
    if isinstance(study, StudyConfig):
        plan_study(study)  # its experiments are checked by the expansion
        return study
    return load_study(Path(study))


def plan_study(
    study: StudySource,
    *,
    cycles: int | None = None,
    order: str | None = None,
    executor: str | None = None,
    no_gaps: bool = False,
) -> PlannedStudy:
    """The study expanded into its planned runs (what `llem plan` shows), with the command
    line's overrides; nothing is written and no engine is needed."""
    config = study if isinstance(study, StudyConfig) else load_study(Path(study))
    config = with_overrides(config, cycles=cycles, order=order, executor=executor, no_gaps=no_gaps)
    path = config.source_path if config.source_path is not None else _unsaved_path(config)
    return planned_study(path, config)


def with_overrides(
    study: StudyConfig,
    *,
    cycles: int | None = None,
    order: str | None = None,
    executor: str | None = None,
    no_gaps: bool = False,
) -> StudyConfig:
    """The study with the command line's --cycles/--order/--executor/--no-gaps over its
    execution settings."""
    if order is not None and order not in typing.get_args(CycleOrder):
        raise UserError(
            f"--order {order!r}: not an order",
            hint=f"one of {', '.join(typing.get_args(CycleOrder))}",
        )
    return study.with_execution(
        n_cycles=cycles, cycle_order=order, executor=executor, no_gaps=no_gaps
    )


def run_study(
    study: StudySource | PlannedStudy,
    *,
    resume: bool = False,
    retry_failed: bool = False,
    executor: str | None = None,
    cycles: int | None = None,
    order: str | None = None,
    locked: bool = False,
    memory: str | None = None,
    detach: bool = False,
    no_gaps: bool = False,
    yes: bool = False,
    confirm: Callable[[int, int], bool] | None = None,
    console: Console | None = None,
    quiet: bool = False,
    stop: StopState | None = None,
    lock_dir: Path | None = None,
) -> StudyResult:
    """Run (or `resume`) a study, every experiment in a fresh container; its results are read
    from the study folder when first asked for.

    The keyword arguments are `llem run`'s options (`memory`: each container's limit, e.g.
    "8g"). Above `execution.max_runs_without_confirmation` runs it needs `yes`, or `confirm`
    (called with the number of runs and the cap) to say yes. `console`: where progress is
    printed (default: stdout; `quiet`: nowhere). `stop`: request it (e.g. from another thread)
    to stop the study as Ctrl+C does. A study already planned (`plan_study`) runs as planned:
    `cycles`, `order` and `executor` apply to a file or a StudyConfig only."""
    if retry_failed and not resume:
        raise UserError("retry_failed goes with resume", hint="pass resume=True too")
    planned = (
        study
        if isinstance(study, PlannedStudy)
        else plan_study(study, cycles=cycles, order=order, executor=executor, no_gaps=no_gaps)
    )
    if detach and not executor_class(planned.study.execution.executor.kind).jobs_outlive_llem:
        raise UserError(
            "--detach goes with an executor whose jobs outlive llem",
            hint="choose a cluster executor (`executor=`, `--executor`)",
        )
    options = RunOptions(
        resume=resume,
        retry_failed=retry_failed,
        locked=locked,
        mem_limit=memory,
        lock_dir=lock_dir,
        detach=detach,
        no_gaps=no_gaps,
    )
    if quiet:
        console = Console(file=io.StringIO())
    display = Display(console)
    pre = Preflight.check(planned, options, display)
    try:
        runs, cap = pre.run_count, planned.study.execution.max_runs_without_confirmation
        if pre.needs_confirmation and not yes and not (confirm is not None and confirm(runs, cap)):
            raise UserError(
                f"the study plans {runs} runs, above the {cap} that run without confirmation; "
                "nothing was run",
                hint="confirm it (`--yes`, yes=True) or raise "
                "execution.max_runs_without_confirmation",
            )
    except BaseException:
        pre.release()
        raise
    ran = execute(pre, options, display, stop)
    return StudyResult(ran.study_dir, exit_code=ran.exit_code)


def load_results(study_dir: str | Path, valid_only: bool = False) -> StudyResult:
    """A study folder's manifest and results, as `llem results` reads them; `valid_only`: the
    configurations' statistics leave out the runs whose GPU energy was read and judged not
    valid, and keep runs without a reading, as `--valid-only` does (`results.validity`). A study
    folder that is not yours, or that others may write, is a UserError naming the fix
    (`study.folder.trusted_study_dir`), raised here: the records are read now, the tables when
    first asked for."""
    result = StudyResult(Path(study_dir), valid_only=valid_only)
    result.data  # noqa: B018 (read now: a folder that cannot be read fails here)
    return result


def _unsaved_path(config: StudyConfig) -> Path:
    """Where a study built in Python stands in for a file: the working folder (its relative
    paths and output_dir resolve from there)."""
    return Path.cwd() / f"{config.name}.yaml"


__all__ = [
    "EXIT_INTERRUPTED",
    "StopState",
    "StudyConfig",
    "StudyResult",
    "UserError",
    "load_results",
    "plan_study",
    "run_study",
    "validate",
]
