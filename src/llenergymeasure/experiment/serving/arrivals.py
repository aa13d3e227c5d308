"""Send times of an open-loop load: seeded inter-arrival times, never waiting on completions.

poisson: exponential gaps of mean 1/rate (CV 1); gamma: shape k = `burstiness`, scale
1/(rate k), so the mean stays 1/rate and the CV is 1/sqrt(k); constant: every gap 1/rate (CV
0); rate inf: every request at t = 0.
"""

from __future__ import annotations

import random

from llenergymeasure.contract.serving import ServingConfig


def send_times(serving: ServingConfig, count: int) -> list[float]:
    """Offsets from the start of sending, s, for up to `count` requests; cut at duration_s."""
    rate = serving.rate
    if rate == float("inf"):
        return [0.0] * count
    draw = random.Random(serving.seed)
    times, t = [], 0.0
    for _ in range(count):
        times.append(t)
        t += gap(serving, rate, draw)
        if serving.duration_s is not None and t >= serving.duration_s:
            break
    return times


def gap(serving: ServingConfig, rate: float, draw: random.Random) -> float:
    if serving.arrival == "constant":
        return 1.0 / rate
    if serving.arrival == "gamma":
        shape = serving.burstiness
        return draw.gammavariate(shape, 1.0 / (rate * shape))
    return draw.expovariate(rate)


def planned_count(serving: ServingConfig) -> int:
    """How many send times to draw: n_requests, else enough to fill duration_s (the sequence
    is cut there)."""
    if serving.n_requests is not None:
        return serving.n_requests
    assert serving.duration_s is not None
    return max(1, int(serving.rate * serving.duration_s * 4) + 100)
