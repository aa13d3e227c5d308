"""A reading taken at a fixed period on a daemon thread, without drift, and once more at each
end: what the GPU power sampler and the RAPL sampler share."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod


class Periodic(ABC):
    def __init__(self, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._take()
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=2 * self.interval_s + 1)
        self._take()

    def _run(self) -> None:
        next_at = time.perf_counter() + self.interval_s
        while not self._stop.wait(max(0.0, next_at - time.perf_counter())):
            self._take()
            next_at += self.interval_s

    @abstractmethod
    def _take(self) -> None:
        """One reading, timestamped by the subclass."""
