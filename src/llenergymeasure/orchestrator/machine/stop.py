"""Ctrl+C and SIGTERM: the first asks the running container to stop, the second kills it.

Handlers only set flags; the study loop and the container watch act on them. First signal:
SIGTERM to the container, 2 s grace, SIGKILL, the run is recorded `interrupted`, exit 130.
A second signal: SIGKILL at once. During a gap: the wait ends at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_INTERRUPTED = 130


class StopState:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    @property
    def requested(self) -> bool:
        return self.count >= 1

    @property
    def immediate(self) -> bool:
        return self.count >= 2

    def request(self) -> None:
        self.count += 1
        self.event.set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when a stop was requested meanwhile."""
        return self.event.wait(max(0.0, seconds))


@contextmanager
def handle_signals(stop: StopState) -> Iterator[StopState]:
    """Route SIGINT and SIGTERM to `stop` while the study runs, and restore the handlers
    after. Only the main thread may install handlers: elsewhere (a library caller's worker
    thread) nothing is installed and `stop` is the caller's to request."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.request()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
