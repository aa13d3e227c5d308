"""`llem-runner WORKDIR`: run one experiment inside its container (`--fetch`: find or download
the hub repositories the host asks for, `runner_entry.fetch`).

Exit 0 with `result.json`, or exit 1 with `error.json` (also for an invalid `config.json` and on
SIGTERM, which gives type "Interrupted" and an exit within about a second).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import (
    CONFIG_FILE,
    CONTAINER_WORKDIR,
    ERROR_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    TIMESERIES_FILE,
    ErrorReport,
    ProgressEvent,
    append_jsonl,
    atomic_write_json,
    utc_now,
)

if TYPE_CHECKING:
    from llenergymeasure.runner_entry.protocol import Instruments

# If the main thread is stuck inside native code when SIGTERM arrives, leave anyway after this.
INTERRUPT_GRACE_S = 1.0


class Interrupted(Exception):
    """SIGTERM or SIGINT: the host is stopping this experiment."""


class InvalidConfig(Exception):
    """config.json is missing or does not validate."""


class Runner:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.done = threading.Event()  # set once result.json or error.json is written

    def emit(self, event: ProgressEvent) -> None:
        append_jsonl(self.workdir / PROGRESS_FILE, event)

    def fail(self, report: ErrorReport) -> None:
        if self.done.is_set():
            return
        self.done.set()
        atomic_write_json(self.workdir / ERROR_FILE, report)

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
        path = self.workdir / CONFIG_FILE
        try:
            return RunRequest.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InvalidConfig(f"{path} does not exist") from exc
        except ValidationError as exc:
            raise InvalidConfig(f"{path} is not a valid run request:\n{exc}") from exc

    def _write_timeseries(self, instruments: Instruments) -> bool:
        """The sampler's rows to timeseries.parquet (kept also when the run fails)."""
        from llenergymeasure.energy.sampler import write_parquet

        if instruments.sampler is None:
            return False
        instruments.sampler.stop()
        write_parquet(instruments.sampler.rows, self.workdir / TIMESERIES_FILE)
        return True

    def run(self) -> int:
        t0 = time.perf_counter()
        self.emit(ProgressEvent(event="started"))
        # Imported here so a bad config or missing engine is still reported through error.json.
        from llenergymeasure.backends.registry import get_backend
        from llenergymeasure.runner_entry.protocol import Instruments, run_protocol
        from llenergymeasure.runner_entry.result_builder import build_result

        started_at = utc_now()
        request = self.load_request()
        instruments = Instruments.open(request.config.gpu_count)
        try:
            if request.config.mode == "serving":
                from llenergymeasure.runner_entry.serving.session import ServingSession

                session = ServingSession(request, self.workdir, self.emit, t0)
                try:
                    result = session.run(instruments)
                finally:
                    self._write_timeseries(instruments)
            else:
                backend = get_backend(request.config.backend)
                try:
                    recording = run_protocol(
                        request, backend, instruments, self.emit, started_at=started_at, t0=t0
                    )
                    written = self._write_timeseries(instruments)
                    result = build_result(recording, backend, instruments, written)
                finally:
                    backend.close()
        finally:
            instruments.close()
        if self.done.is_set():
            return 1
        atomic_write_json(self.workdir / RESULT_FILE, result)
        self.done.set()
        self.emit(ProgressEvent(event="finished"))
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llem-runner", description=__doc__)
    parser.add_argument("workdir", nargs="?", default=CONTAINER_WORKDIR, type=Path)
    parser.add_argument("--fetch", action="store_true", help="Fetch, do not measure.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if args.fetch:
        from llenergymeasure.runner_entry.fetch import fetch

        return fetch(args.workdir)
    runner = Runner(args.workdir)
    signal.signal(signal.SIGTERM, runner.on_signal)
    signal.signal(signal.SIGINT, runner.on_signal)
    try:
        return runner.run()
    except Interrupted:
        return 1
    except InvalidConfig as exc:
        runner.fail(ErrorReport.capped("InvalidConfig", str(exc), ""))
        return 1
    except BaseException as exc:  # every failure must leave error.json behind
        runner.fail(ErrorReport.capped(type(exc).__name__, str(exc), traceback.format_exc()))
        return 1
