"""The steady state of a serving run, by one stated rule (README: serving mode).

After the warm-up and before the drain, the longest interval in which the number of requests
in flight stays at or above `fraction` x its peak. "After the warm-up": from the first send of a
measured request. "Before the drain": until the last send, after which nothing arrives (with
every request sent at once, rate inf without a cap, there is no such bound: the interval ends
when the in-flight count first falls below the threshold). With a concurrency cap at rate inf
this is the time the cap stays (nearly) full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llenergymeasure.runner_entry.serving.records import RequestRecord


@dataclass(frozen=True)
class SteadyState:
    start_s: float
    end_s: float
    peak_in_flight: int
    threshold: int  # in flight at or above this throughout

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def in_flight_steps(records: list[RequestRecord]) -> list[tuple[float, int]]:
    """(time, requests in flight from that time on), one step per change."""
    events: list[tuple[float, int]] = []
    for r in records:
        if r.sent_s is None:
            continue
        events.append((r.sent_s, +1))
        events.append((r.end_s if r.end_s is not None else math.inf, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    steps: list[tuple[float, int]] = []
    count = 0
    for t, change in events:
        count += change
        if steps and steps[-1][0] == t:
            steps[-1] = (t, count)
        else:
            steps.append((t, count))
    return steps


def steady_state(records: list[RequestRecord], fraction: float) -> SteadyState | None:
    """The rule above, or None when no request was measured."""
    measured = [r for r in records if not r.warmup and r.sent_s is not None]
    if not measured:
        return None
    begin = min(r.sent_s for r in measured if r.sent_s is not None)
    last_send = max(r.sent_s for r in records if r.sent_s is not None)
    bound = last_send if last_send > begin else math.inf
    steps = [(t, n) for t, n in in_flight_steps(records) if t < bound]
    # The count in force at `begin` (set by an earlier step) starts the series there.
    current = 0
    series: list[tuple[float, int]] = []
    for t, n in steps:
        if t <= begin:
            current = n
        else:
            series.append((t, n))
    series.insert(0, (begin, current))
    peak = max(n for _, n in series)
    threshold = max(1, math.ceil(fraction * peak))
    best: tuple[float, float] | None = None
    run_start: float | None = None
    ends = [t for t, _ in series[1:]] + [bound]
    for (t, n), t_next in zip(series, ends, strict=True):
        if n >= threshold:
            run_start = t if run_start is None else run_start
            end = t_next
            if end == math.inf:  # all sent at once: the drain starts when the count falls
                end = t
            if best is None or end - run_start > best[1] - best[0]:
                best = (run_start, end)
        else:
            run_start = None
    if best is None or best[1] <= best[0]:
        return None
    return SteadyState(best[0], best[1], peak, threshold)


def requests_for_more_steady_s(missing_s: float, achieved_rate: float) -> int:
    """How many more requests would lengthen the steady state by `missing_s` at this rate."""
    return math.ceil(missing_s * achieved_rate) if achieved_rate > 0 else 0
