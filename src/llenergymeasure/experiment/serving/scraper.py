"""The server's own gauges over time: its /metrics scraped on a thread (queue, KV cache)."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

# vLLM's Prometheus names; older releases said gpu_.
SERVER_GAUGES = re.compile(
    r"^vllm:(num_requests_running|num_requests_waiting|kv_cache_usage_perc|gpu_cache_usage_perc)"
    r"(\{[^}]*\})?\s+([0-9.eE+-]+)$"
)
BUSY_GAUGES = ("num_requests_running", "num_requests_waiting")


def read_gauges(url: str) -> list[tuple[str, float]] | None:
    """The gauges /metrics shows now, or None when it did not answer."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            text = answer.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    found = []
    for line in text.splitlines():
        match = SERVER_GAUGES.match(line.strip())
        if match:
            found.append((match.group(1), float(match.group(3))))
    return found


def wait_idle(url: str, timeout_s: float, poll_s: float = 0.25) -> bool:
    """Until the server reports no request running or waiting (True), or `timeout_s` passed
    or it shows no such gauge (False): requests cancelled at a stage's end may still be
    aborting inside it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        gauges = read_gauges(url)
        busy = [value for name, value in gauges or [] if name in BUSY_GAUGES]
        if not busy:
            return False
        if sum(busy) == 0:
            return True
        time.sleep(poll_s)
    return False


class MetricsScraper:
    """/metrics every `interval_s` on a thread; rows are (s since `clock_zero`, gauge, value)."""

    def __init__(self, url: str, interval_s: float, clock_zero: float) -> None:
        self.url, self.interval_s, self.zero = url, interval_s, clock_zero
        self.rows: list[tuple[float, str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llem-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scrape()
            self._stop.wait(self.interval_s)

    def scrape(self) -> None:
        t = time.perf_counter() - self.zero
        for name, value in read_gauges(self.url) or []:
            self.rows.append((t, name, value))
