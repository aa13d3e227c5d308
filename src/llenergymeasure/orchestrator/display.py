"""What `llem run` shows while a study runs: a rich live view on a TTY, plain lines otherwise.

Live view: an overall bar with ETA, the current run (backend, model, swept values, phase,
batch i/N, elapsed) and one line per finished run (J/token and tok/s, or the failure reason).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import PROGRESS_FILE, read_progress
from llenergymeasure.study.manifest_models import RunRecord
from llenergymeasure.study.models import PlannedRun


def result_summary(result: ExperimentResult) -> str:
    energy = result.energy
    jpt = (
        f"{energy.j_per_output_token:.4g} J/token"
        if energy.j_per_output_token is not None
        else f"J/token n/a ({energy.j_per_output_token_reason})"
    )
    return f"{jpt}, {result.throughput.output_tokens_per_s:.4g} output tok/s"


class Display:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.live = self.console.is_terminal
        self._progress: Progress | None = None
        self._overall = None
        self._current = None
        self._run: PlannedRun | None = None
        self._run_started = 0.0
        self._workdir: Path | None = None
        self._events_seen = 0
        self._phase = "starting"
        self._head = ""
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
            )
            self._progress.start()
            self._overall = self._progress.add_task(
                "study", total=total, completed=done, count=f"{done}/{total} runs"
            )
            self._current = self._progress.add_task("", total=None, visible=False, count="")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def note(self, text: str) -> None:
        self.console.print(escape(text))

    # runs -------------------------------------------------------------------------------------
    def run_started(self, run: PlannedRun, position: int, total: int, workdir: Path) -> None:
        self._run, self._workdir = run, workdir
        self._run_started, self._events_seen, self._phase = time.time(), 0, "starting"
        swept = " ".join(f"{k}={v}" for k, v in run.swept.items())
        self._head = f"{run.run_id} {run.config.backend} {run.config.model} {swept}".rstrip()
        if self.live and self._progress is not None:
            self._progress.update(
                self._current,
                description=escape(f"{self._head}: starting"),
                total=None,
                completed=0,
                count="",
                visible=True,
            )
        else:
            self.console.print(escape(f"[{position}/{total}] {self._head} ... started"))

    def tick(self) -> None:
        """Called while the container runs: pick up new progress events."""
        if self._workdir is None:
            return
        events = read_progress(self._workdir / PROGRESS_FILE)
        fresh = events[self._events_seen :]
        self._events_seen = len(events)
        batch = None
        for event in fresh:
            self._phase = event.event + (f" ({event.detail})" if event.detail else "")
            if event.event == "batch" and event.i and event.n:
                batch = (event.i, event.n)
            elif not self.live:
                self.console.print(escape(f"    {event.event}"))
        if self.live and self._progress is not None and self._run is not None:
            elapsed = time.time() - self._run_started
            fields: dict = {}
            if batch is not None:
                fields = {
                    "completed": batch[0],
                    "total": batch[1],
                    "count": "batch {}/{}".format(*batch),
                }
            elif fresh:
                fields = {"completed": 0, "total": None, "count": ""}
            self._progress.update(
                self._current,
                description=escape(f"{self._head}: {self._phase}, {elapsed:.0f} s"),
                **fields,
            )

    def run_finished(self, record: RunRecord, summary: str) -> None:
        text = f"  {record.run_id}: {record.outcome} {summary}".rstrip()
        if self._progress is not None:
            self._progress.advance(self._overall)
            task = self._progress.tasks[self._overall]
            self._progress.update(
                self._overall, count=f"{int(task.completed)}/{int(task.total or 0)} runs"
            )
            self._progress.update(self._current, visible=False)
        style = "green" if record.status == "completed" else "red"
        self.console.print(f"[{style}]{escape(text)}[/]")
        self._workdir = None

    def gap(self, seconds: float, reason: str) -> None:
        if self.live and self._progress is not None:
            self._gap_reason = reason
            self.gap_left(seconds)
        else:
            self.console.print(escape(f"  waiting {seconds:.0f} s ({reason})"))

    def gap_left(self, seconds: float) -> None:
        """The gap's countdown on the live view."""
        if self.live and self._progress is not None:
            self._progress.update(
                self._current,
                description=escape(f"gap {self._gap_reason}: {seconds:.0f} s left (Enter skips)"),
                total=None,
                count="",
                visible=True,
            )
