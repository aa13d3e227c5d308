"""How llem is stopped: Ctrl+C (SIGINT), SIGTERM, SIGHUP (its terminal or SSH session went
away) and SIGQUIT all ask the running containers to stop; a second request kills them.

Handlers only set flags; the study loop and the container watch act on them. First request:
SIGTERM to every running container, 2 s grace, SIGKILL, each run recorded `interrupted`, GPU
settings put back, exit 130. A second request: SIGKILL at once. During a gap: the wait ends at
once.

Exit 130 whichever signal it was: llem's one code for "stopped on request; the manifest says
interrupted and `--resume` finishes the study". After a SIGHUP nobody reads it (the shell that
would have is gone); a script or a batch system that stops llem sees the same code whatever it
sent.

A SIGHUP counts once: a closed terminal may deliver it twice (the shell passes its own on, and
the kernel sends the foreground group another), which is no request to skip the grace. A
SIGHUP that was ignored when llem started (`nohup llem run ...`) stays ignored: the study was
asked to outlive its terminal (the display stops writing to a terminal that went away).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class StopState:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()
        self.hung_up = False

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
    """Route STOP_SIGNALS to `stop` while the study runs, and restore the handlers after.
    Only the main thread may install handlers: elsewhere (a library caller's worker thread)
    nothing is installed and `stop` is the caller's to request."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            if stop.hung_up:
                return
            stop.hung_up = True
        stop.request()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {}
    for sig in STOP_SIGNALS:
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
            continue  # nohup
        previous[sig] = signal.signal(sig, _handler)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
