"""The steady state of a serving run, by one stated rule (README: serving mode).

In flight = requests sent and not yet answered, averaged over a trailing `smooth_s` (the slice
length). Its level is its time average over the second half of the sending period. The steady
state starts after the warm-up (at the first measured send, or later) when the averaged count
first reaches `fraction` x that level (the ramp is over), and ends at the last send (the drain
begins). With a concurrency cap at rate inf this is from the cap's (near) filling to the drain.
With every request sent at once and no cap, there is no sending period: it is then from the
send until the count first falls below `fraction` x its peak. A count that never reaches the
threshold before the last send, or still rises inside the window (its second half's mean above
its first half's by more than (1 - fraction) x level, and by a whole request), kept rising: the
server fell behind the arrivals and there is no steady state; the window is still reported,
flagged `reached = False`.

Why a level, not the peak of the instantaneous count: under light load the count flickers
between 0 and a few requests, so "the longest interval at or above a fraction of the peak"
picks a few tens of milliseconds of a minutes-long load.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from llenergymeasure.experiment.serving.records import RequestRecord

GRID_STEPS = 200  # evaluation points of the averaged count over the sending period


@dataclass(frozen=True)
class SteadyState:
    start_s: float
    end_s: float
    peak_in_flight: int
    level: float  # mean requests in flight over the second half of sending
    threshold: float  # the averaged count the ramp had to reach
    reached: bool = True  # False: the count kept rising until the drain (overload)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class InFlight:
    """Requests in flight as a step function of time (s since sending began)."""

    def __init__(self, records: list[RequestRecord]) -> None:
        events: list[tuple[float, int]] = []
        for r in records:
            if r.sent_s is None:
                continue
            events.append((r.sent_s, +1))
            events.append((r.end_s if r.end_s is not None else math.inf, -1))
        events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
        self.times: list[float] = []
        self.counts: list[int] = []
        count = 0
        for t, change in events:
            count += change
            if self.times and self.times[-1] == t:
                self.counts[-1] = count
            else:
                self.times.append(t)
                self.counts.append(count)

    def at(self, t: float) -> int:
        k = bisect.bisect_right(self.times, t) - 1
        return self.counts[k] if k >= 0 else 0

    @property
    def peak(self) -> int:
        return max(self.counts, default=0)

    def mean(self, start: float, end: float) -> float:
        """Time average over [start, end]."""
        if end <= start:
            return float(self.at(start))
        total, t, k = 0.0, start, bisect.bisect_right(self.times, start)
        current = self.at(start)
        while k < len(self.times) and self.times[k] < end:
            total += current * (self.times[k] - t)
            t, current = self.times[k], self.counts[k]
            k += 1
        total += current * (end - t)
        return total / (end - start)


def steady_state(
    records: list[RequestRecord], fraction: float, smooth_s: float
) -> SteadyState | None:
    """The rule above, or None when no request was measured or nothing was in flight."""
    measured = [r.sent_s for r in records if not r.warmup and r.sent_s is not None]
    sends = [r.sent_s for r in records if r.sent_s is not None]
    if not measured:
        return None
    flight = InFlight(records)
    begin, last_send = min(measured), max(sends)
    if last_send <= begin:
        return _all_at_once(flight, begin, fraction)
    level = flight.mean((begin + last_send) / 2, last_send)
    if level <= 0:
        return None
    threshold = fraction * level
    # A load shorter than the smoothing sees its average over a quarter of it.
    smooth_s = min(smooth_s, (last_send - begin) / 4)
    step = (last_send - begin) / GRID_STEPS
    start = begin
    for k in range(GRID_STEPS):
        t = begin + k * step
        if flight.mean(max(0.0, t - smooth_s), t) >= threshold:
            start = t
            break
    else:  # never reached before the drain
        return SteadyState(begin, last_send, flight.peak, level, threshold, reached=False)
    middle = (start + last_send) / 2
    rise = flight.mean(middle, last_send) - flight.mean(start, middle)
    # Still rising by more than the fraction allows (and by a whole request at least): the
    # requests piled up faster than they were answered.
    rising = rise > max((1 - fraction) * level, 1.0)
    return SteadyState(start, last_send, flight.peak, level, threshold, reached=not rising)


def _all_at_once(flight: InFlight, begin: float, fraction: float) -> SteadyState | None:
    threshold = fraction * flight.peak
    for t, n in zip(flight.times, flight.counts, strict=True):
        if t > begin and n < threshold:
            return SteadyState(begin, t, flight.peak, float(flight.peak), threshold)
    return None


def requests_for_more_steady_s(missing_s: float, achieved_rate: float) -> int:
    """How many more requests would lengthen the steady state by `missing_s` at this rate."""
    return math.ceil(missing_s * achieved_rate) if achieved_rate > 0 else 0
