"""One experiment, measured in this process: its progress events, and exactly one of
`result.json` (exit 0) or `error.json` (exit 1; also for an invalid `config.json` and on SIGTERM,
which gives type "Interrupted" and an exit within about a second). `llem-experiment`
(`experiment.main`) runs it, under its supervisor where the run has a deadline.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from llenergymeasure.contract.run import Placement, RunRequest
from llenergymeasure.contract.workdir import (
    ErrorReport,
    ProgressEvent,
    WorkPaths,
    append_jsonl,
    atomic_write_json,
)

if TYPE_CHECKING:
    from llenergymeasure.experiment.instruments import Instruments

# If the main thread is stuck inside native code when SIGTERM arrives, leave anyway after this.
INTERRUPT_GRACE_S = 1.0


class Interrupted(Exception):
    """SIGTERM or SIGINT: the host is stopping this experiment."""


class InvalidConfig(Exception):
    """config.json is missing or does not validate."""


class ExperimentProcess:
    """This process: one experiment, its progress events, and exactly one of result.json or
    error.json."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.done = threading.Event()  # set once result.json or error.json is written
        self.timeseries_written = False

    def emit(self, event: ProgressEvent) -> None:
        append_jsonl(self.workdir / WorkPaths.PROGRESS, event)

    def fail(self, report: ErrorReport) -> None:
        if self.done.is_set():
            return
        self.done.set()
        atomic_write_json(self.workdir / WorkPaths.ERROR, report)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.done.is_set():
            return
        name = signal.Signals(signum).name
        self.fail(ErrorReport.capped("Interrupted", f"received {name}", ""))
        watchdog = threading.Timer(INTERRUPT_GRACE_S, os._exit, args=(1,))
        watchdog.daemon = True
        watchdog.start()
        raise Interrupted(name)

    def load_request(self) -> RunRequest:
        """config.json, placed where the executor's placement.json says (when there is one)."""
        path = self.workdir / WorkPaths.CONFIG
        try:
            request = RunRequest.model_validate_json(path.read_text(encoding="utf-8"))
            placed = self.workdir / WorkPaths.PLACEMENT
            if placed.exists():
                request = request.placed(
                    Placement.model_validate_json(placed.read_text(encoding="utf-8"))
                )
            return request
        except FileNotFoundError as exc:
            raise InvalidConfig(f"{path} does not exist") from exc
        except ValidationError as exc:
            raise InvalidConfig(f"{exc.title} in the work folder is not valid:\n{exc}") from exc

    def _write_timeseries(self, instruments: Instruments) -> bool:
        """The sampler's rows to timeseries.parquet, once (kept also when the run fails)."""
        from llenergymeasure.energy.sampler import write_parquet

        if instruments.sampler is None:
            return False
        if not self.timeseries_written:
            instruments.sampler.stop()
            write_parquet(instruments.sampler.rows, self.workdir / WorkPaths.TIMESERIES)
            self.timeseries_written = True
        return True

    def run(self) -> int:
        t0 = time.perf_counter()
        self.emit(ProgressEvent(event="started"))
        # Imported here so a bad config or missing engine is still reported through error.json.
        from llenergymeasure.experiment.instruments import Instruments
        from llenergymeasure.experiment.modes import session_class

        request = self.load_request()
        instruments = Instruments.open(request.config.gpu_count)
        try:
            session = session_class(request.config.mode)(
                request, self.workdir, self.emit, instruments, t0
            )
            try:
                result = session.run(lambda: self._write_timeseries(instruments))
            finally:
                session.close()
                self._write_timeseries(instruments)
        finally:
            instruments.close()
        if self.done.is_set():
            return 1
        atomic_write_json(self.workdir / WorkPaths.RESULT, result)
        self.done.set()
        self.emit(ProgressEvent(event="finished"))
        return 0


def measure(workdir: Path) -> int:
    """Run the experiment of `workdir` in this process; its exit code."""
    process = ExperimentProcess(workdir)
    signal.signal(signal.SIGTERM, process.on_signal)
    signal.signal(signal.SIGINT, process.on_signal)
    try:
        return process.run()
    except Interrupted:
        return 1
    except InvalidConfig as exc:
        process.fail(ErrorReport.capped("InvalidConfig", str(exc), ""))
        return 1
    except BaseException as exc:  # every failure must leave error.json behind
        process.fail(ErrorReport.capped(type(exc).__name__, str(exc), traceback.format_exc()))
        return 1
