"""Pure energy arithmetic on recorded readings: counter deltas, integrals, baselines, sums."""

from __future__ import annotations

import itertools
from collections.abc import Sequence


def counter_delta(start: float, end: float, wrap_at: float | None = None) -> float | None:
    """Increase of a cumulative energy counter between two readings (same unit as the readings).

    RAPL's `energy_uj` wraps to 0 after `max_energy_range_uj` (`wrap_at`): a smaller end reading
    then means one wrap. NVML's 64-bit millijoule counter does not wrap in practice, so there a
    smaller end reading means the counter was reset (driver reload, GPU reset) and the window's
    energy is unknown: None. At most one wrap is assumed, so windows must be shorter than a wrap
    period (RAPL package counters wrap after tens of minutes at full power).
    """
    if end >= start:
        return end - start
    if wrap_at is None:
        return None
    return end + (wrap_at - start)


def trapezoid_j(times_s: Sequence[float], powers_w: Sequence[float]) -> float:
    """Energy (J) under a power curve (W) sampled at `times_s`, by the trapezoid rule."""
    if len(times_s) != len(powers_w):
        raise ValueError("times and powers differ in length")
    total = 0.0
    for k in range(1, len(times_s)):
        dt = times_s[k] - times_s[k - 1]
        if dt < 0:
            raise ValueError("sample times must not decrease")
        total += 0.5 * (powers_w[k] + powers_w[k - 1]) * dt
    return total


def _interpolate(t: float, t0: float, p0: float, t1: float, p1: float) -> float:
    if t1 == t0:
        return p0
    return p0 + (p1 - p0) * (t - t0) / (t1 - t0)


def window_energy_j(
    times_s: Sequence[float], powers_w: Sequence[float], start_s: float, end_s: float
) -> float | None:
    """Trapezoid energy over [start_s, end_s], power interpolated linearly at the two edges.

    None when the samples do not span the window (one bracketing sample each side is needed):
    an integral that extrapolates would be an estimate, not a reading.
    """
    if end_s < start_s:
        raise ValueError("window ends before it starts")
    pairs = sorted(zip(times_s, powers_w, strict=True))
    if len(pairs) < 2 or pairs[0][0] > start_s or pairs[-1][0] < end_s:
        return None
    ts: list[float] = []
    ps: list[float] = []
    for k in range(1, len(pairs)):
        (ta, pa), (tb, pb) = pairs[k - 1], pairs[k]
        if tb < start_s or ta > end_s:
            continue
        lo, hi = max(ta, start_s), min(tb, end_s)
        if not ts:
            ts.append(lo)
            ps.append(_interpolate(lo, ta, pa, tb, pb))
        ts.append(hi)
        ps.append(_interpolate(hi, ta, pa, tb, pb))
    return trapezoid_j(ts, ps)


def baseline_power_w(energy_j: float, duration_s: float) -> float:
    """Mean power of an idle reading."""
    if duration_s <= 0:
        raise ValueError("baseline duration must be positive")
    return energy_j / duration_s


def adjusted_energy_j(raw_j: float, baseline_w: float, duration_s: float) -> float:
    """Energy attributable to the work: raw minus what the idle floor draws over the window.

    It can come out negative when the workload barely loads the device and idle power drifted;
    it is reported as computed, never clipped, so the noise stays visible.
    """
    return raw_j - baseline_w * duration_s


def sum_devices(values: Sequence[float | None]) -> float | None:
    """Total over devices; None if any device is unknown (a partial sum would under-report)."""
    if not values or any(v is None for v in values):
        return None
    return float(sum(v for v in values if v is not None))


def counter_window_j(
    times_s: Sequence[float], counters_mj: Sequence[float], start_s: float, end_s: float
) -> float | None:
    """Energy (J) over [start_s, end_s] from a sampled cumulative counter (mJ): the counter
    interpolated linearly at both edges between its bracketing samples (constant power between
    two samples), the difference taken. For a window chosen after the fact (serving's steady
    state). None when the samples do not bracket the window or the counter went backwards."""
    pairs = sorted(zip(times_s, counters_mj, strict=True))
    if len(pairs) < 2 or pairs[0][0] > start_s or pairs[-1][0] < end_s or end_s < start_s:
        return None
    if any(b[1] < a[1] for a, b in itertools.pairwise(pairs)):
        return None  # reset (driver reload): unknown, never a guess
    return (_counter_at(pairs, end_s) - _counter_at(pairs, start_s)) / 1000.0


def went_back(
    times_s: Sequence[float], counters_mj: Sequence[float], start_s: float, end_s: float
) -> bool:
    """Whether the counter decreased between the samples bracketing [start_s, end_s]: a reset
    (or wrap) inside the window."""
    pairs = sorted(zip(times_s, counters_mj, strict=True))
    first = max((k for k, (t, _) in enumerate(pairs) if t <= start_s), default=0)
    last = min((k for k, (t, _) in enumerate(pairs) if t >= end_s), default=len(pairs) - 1)
    span = pairs[first : last + 1]
    return any(b[1] < a[1] for a, b in itertools.pairwise(span))


def _counter_at(pairs: list[tuple[float, float]], t: float) -> float:
    for (ta, ca), (tb, cb) in itertools.pairwise(pairs):
        if ta <= t <= tb:
            return _interpolate(t, ta, ca, tb, cb)
    raise ValueError("time outside the samples")
