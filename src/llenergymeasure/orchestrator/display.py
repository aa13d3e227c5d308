"""What `llem run` shows while a study runs: a rich live view on a TTY, plain lines otherwise.

Live view: an overall bar with ETA, one line per run in flight (backend, model, swept values,
phase, batch i/N, elapsed), the gap's countdown, and one line per finished run (J/token and
tok/s, or the failure reason). Progress is read incrementally (`ProgressTail`) and the view
refreshes at most `REFRESH_HZ` times a second, whatever the caller's pace: following a run costs
what it appends, not what it has written so far.

The display never ends a study: a terminal that went away (a closed window, a dropped SSH
session: writes fail with EIO) or a pipe whose reader left (EPIPE) silences it
(`QuietOnFailure`), and the study goes on to its normal end, or to the stop its SIGHUP asked
for.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.study.manifest_models import RunRecord
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.untrusted import printable
from llenergymeasure.study.work_files import ProgressTail

REFRESH_HZ = 4.0
STANDARD_OUTPUTS = (1, 2)


class QuietOnFailure:
    """The console's output file, which goes quiet for good at the first write or flush that
    fails. The descriptor under it, and stdout or stderr where they are the same terminal or
    pipe, then point at /dev/null: nothing else that writes there (rich's refresh thread, a
    last message, the interpreter's final flush of what the failed write left buffered) fails
    either."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._file.write(text)
            except (OSError, ValueError):  # ValueError: the file was closed under us
                self._go_quiet()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self._go_quiet()

    def isatty(self) -> bool:
        return not self.gone and self._file.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ...: the file's own
        return getattr(self._file, name)

    def _go_quiet(self) -> None:
        self.gone = True
        try:
            fd = self._file.fileno()
            under = os.fstat(fd)
        except (OSError, ValueError):
            return  # not a descriptor (a StringIO): nothing else writes there
        same = [n for n in STANDARD_OUTPUTS if n != fd and _same_file(n, under)]
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for n in (fd, *same):
                os.dup2(devnull, n)
        finally:
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._file.flush()  # what the failed write left buffered: to /dev/null now


def _same_file(fd: int, stat: os.stat_result) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), stat)
    except OSError:
        return False


def shown(text: str) -> str:
    """Text for the console: no markup taken from it, no control sequence let through (run
    errors and progress details come from containers)."""
    return escape(printable(text))


def result_summary(result: ExperimentResult) -> str:
    energy = result.energy
    jpt = (
        f"{energy.j_per_output_token:.4g} J/token"
        if energy.j_per_output_token is not None
        else f"J/token n/a ({energy.j_per_output_token_reason})"
    )
    line = f"{jpt}, {result.throughput.output_tokens_per_s:.4g} output tok/s"
    if result.max_rate is not None:
        found = result.max_rate
        rate = (
            f"max rate meeting the SLOs {found.max_rate:g} req/s"
            if found.max_rate is not None
            else f"no rate met the SLOs ({found.max_rate_reason})"
        )
        return f"{rate} after {found.probes} stages; there: {line}"
    if result.stages:
        return f"{len(result.stages)} stages; stage {result.headline_stage}: {line}"
    return line


@dataclass
class _Watched:
    """A run in flight as the view follows it."""

    head: str
    tail: ProgressTail
    started: float
    task: TaskID | None = None
    phase: str = "starting"
    batch: tuple[int, int] | None = field(default=None)


class Display:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        file = self.console.file
        self.output = file if isinstance(file, QuietOnFailure) else QuietOnFailure(file)
        self.console.file = self.output  # type: ignore[assignment]
        self.live = self.console.is_terminal
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._gap_task: TaskID | None = None
        self._runs: dict[str, _Watched] = {}
        self._last_refresh = 0.0
        self._gap_reason = ""

    # study ------------------------------------------------------------------------------------
    def start(self, total: int, done: int) -> None:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
                refresh_per_second=REFRESH_HZ,
            )
            self._progress.start()
            self._overall = self._progress.add_task(
                "study", total=total, completed=done, count=f"{done}/{total} runs"
            )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def note(self, text: str) -> None:
        self.console.print(shown(text))

    # runs -------------------------------------------------------------------------------------
    def run_started(
        self, run: PlannedRun, position: int, total: int, workdir: Path, queued: bool = False
    ) -> None:
        """A run began; `queued`: handed to a cluster's scheduler, its line appears with its first
        progress event, so a thousand queued jobs do not fill the view."""
        swept = " ".join(f"{k}={v}" for k, v in run.swept.items())
        head = f"{run.run_id} {run.config.backend} {run.config.model} {swept}".rstrip()
        watched = _Watched(head, ProgressTail(workdir / WorkPaths.PROGRESS), time.time())
        self._runs[run.run_id] = watched
        self._hide_gap()
        if self._progress is not None:
            if not queued:
                watched.task = self._progress.add_task(
                    shown(f"{head}: starting"), total=None, count=""
                )
        else:
            verb = "submitted" if queued else "started"
            self.console.print(shown(f"[{position}/{total}] {head} ... {verb}"))

    def refresh(self, force: bool = False) -> None:
        """Pick up new progress events of every run in flight; at most REFRESH_HZ a second."""
        now = time.monotonic()
        if not force and now - self._last_refresh < 1.0 / REFRESH_HZ:
            return
        self._last_refresh = now
        for watched in self._runs.values():
            self._follow(watched)

    def _follow(self, watched: _Watched) -> None:
        fresh = watched.tail.read_new()
        for event in fresh:
            watched.phase = event.event + (f" ({event.detail})" if event.detail else "")
            if event.event == "batch" and event.i and event.n:
                watched.batch = (event.i, event.n)
            else:
                watched.batch = None
                if self._progress is None:
                    self.console.print(shown(f"    {event.event}"))
        if self._progress is None:
            return
        if watched.task is None:
            if not fresh:
                return  # queued: no line until it starts
            watched.started = time.time()
            watched.task = self._progress.add_task(shown(watched.head), total=None, count="")
        fields: dict = {"completed": 0, "total": None, "count": ""}
        if watched.batch is not None:
            i, n = watched.batch
            fields = {"completed": i, "total": n, "count": f"batch {i}/{n}"}
        elapsed = time.time() - watched.started
        self._progress.update(
            watched.task,
            description=shown(f"{watched.head}: {watched.phase}, {elapsed:.0f} s"),
            **fields,
        )

    def run_finished(self, record: RunRecord, summary: str) -> None:
        watched = self._runs.pop(record.run_id, None)
        text = f"  {record.run_id}: {record.outcome} {summary}".rstrip()
        if self._progress is not None and self._overall is not None:
            self._progress.advance(self._overall)
            task = self._progress.tasks[self._overall]
            self._progress.update(
                self._overall, count=f"{int(task.completed)}/{int(task.total or 0)} runs"
            )
            if watched is not None and watched.task is not None:
                self._progress.remove_task(watched.task)
        style = "green" if record.status == "completed" else "red"
        self.console.print(f"[{style}]{shown(text)}[/]")

    # gaps -------------------------------------------------------------------------------------
    def gap(self, seconds: float, reason: str) -> None:
        """A gap begins before the next run."""
        if self._progress is None:
            self.console.print(shown(f"  waiting {seconds:.0f} s ({reason})"))
            return
        self._hide_gap()
        self._gap_task = self._progress.add_task("", total=None, count="")
        self._gap_reason = reason
        self.gap_left(seconds)

    def gap_left(self, seconds: float) -> None:
        """The gap's countdown on the live view."""
        if self._progress is not None and self._gap_task is not None:
            self._progress.update(
                self._gap_task,
                description=shown(f"gap {self._gap_reason}: {seconds:.0f} s left (Enter skips)"),
            )

    def _hide_gap(self) -> None:
        if self._progress is not None and self._gap_task is not None:
            self._progress.remove_task(self._gap_task)
        self._gap_task = None
