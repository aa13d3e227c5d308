"""Whether an energy figure can be trusted, judged by the rules of `contract.validity.RULES`.

A rule fires on what the window's own readings show (sample gaps, the counter against the
power integral, power against idle and the limit, slowdowns, temperature) or on what makes
the energy unattributable (other processes, a MIG slice, the wrong GPUs, a shared host). A
figure is valid exactly when no rule fired; every reason says what was seen and the bound.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from llenergymeasure.contract.validity import (
    DRIFT_C,
    IDLE_FLOOR,
    LIMIT_CEILING,
    MAX_COUNTER_INTEGRAL_DEVIATION,
    MAX_GAP_INTERVALS,
    MAX_GAP_S,
    MIN_WINDOW_S,
    MIN_WINDOW_UPDATES,
    Validity,
    ValidityReason,
    rule_reason,
)
from llenergymeasure.energy.gpus import AT_POWER_LIMIT


@dataclass(frozen=True)
class GpuWindow:
    """What one GPU's readings showed over the window (None: not read)."""

    mean_power_w: float | None
    idle_power_w: float | None
    power_limit_w: float | None
    temperatures_c: Sequence[float] = ()  # in time order, the window's samples
    mig: bool | None = None


@dataclass(frozen=True)
class GpuEvidence:
    """Everything the GPU rules read, for one window."""

    energy_reason: str | None  # why gpu_j is null; None when measured
    integral_only: bool
    counter_reset: bool
    window_s: float
    counter_update_s: float | None
    largest_gap_s: float | None
    sample_interval_s: float | None
    counter_integral_ratio: float | None
    gpus: Sequence[GpuWindow] = ()
    throttles: Sequence[str] = ()  # performance throttle names seen
    other_processes: int = 0
    identity_mismatch: str | None = None
    idle_reused_from: str | None = None  # the idle power is another run's: which, how old


def gpu_validity(ev: GpuEvidence) -> Validity:
    if ev.energy_reason is not None:
        return Validity.of([ValidityReason(code="energy_unavailable", detail=ev.energy_reason)])
    found: list[ValidityReason] = []
    if ev.counter_reset:
        found.append(rule_reason("counter_reset", "the NVML counter went backwards"))
    if ev.integral_only:
        found.append(rule_reason("integral_only", "energy integrated from sampled power"))
    found += _gap(ev) + _window(ev) + _ratio(ev) + _power(ev) + _temperature(ev)
    slowdowns = [name for name in ev.throttles if name != AT_POWER_LIMIT]
    if slowdowns:
        found.append(rule_reason("throttled", f"seen: {', '.join(slowdowns)}"))
    if ev.other_processes:
        found.append(rule_reason("foreign_processes", f"{ev.other_processes} other process(es)"))
    migs = [k for k, g in enumerate(ev.gpus) if g.mig]
    if migs:
        found.append(rule_reason("mig_slice", f"MIG on measured GPU position(s) {migs}"))
    if ev.identity_mismatch:
        found.append(rule_reason("gpu_identity", ev.identity_mismatch))
    return Validity.of(found)


def _gap(ev: GpuEvidence) -> list[ValidityReason]:
    if ev.largest_gap_s is None or ev.sample_interval_s is None:
        return []
    bound = min(MAX_GAP_INTERVALS * ev.sample_interval_s, MAX_GAP_S)
    if ev.largest_gap_s <= bound:
        return []
    return [rule_reason("sample_gap", f"largest gap {ev.largest_gap_s * 1000:.0f} ms")]


def min_window_s(counter_update_s: float | None) -> float:
    return max(MIN_WINDOW_S, MIN_WINDOW_UPDATES * (counter_update_s or 0.0))


def _window(ev: GpuEvidence) -> list[ValidityReason]:
    if ev.window_s >= min_window_s(ev.counter_update_s):
        return []
    return [rule_reason("window_short", f"window {ev.window_s:.2f} s")]


def _ratio(ev: GpuEvidence) -> list[ValidityReason]:
    ratio = ev.counter_integral_ratio
    if ratio is None or abs(ratio - 1) <= MAX_COUNTER_INTEGRAL_DEVIATION:
        return []
    return [rule_reason("counter_integral_mismatch", f"counter / integral = {ratio:.3f}")]


def _power(ev: GpuEvidence) -> list[ValidityReason]:
    out = []
    for k, gpu in enumerate(ev.gpus):
        if gpu.mean_power_w is None:
            continue
        low = IDLE_FLOOR * gpu.idle_power_w if gpu.idle_power_w is not None else None
        if low is not None and gpu.mean_power_w < low:
            seen = f"GPU position {k}: mean {gpu.mean_power_w:.1f} W < {low:.1f} W"
            if ev.idle_reused_from is not None:
                seen += f" (idle baseline {ev.idle_reused_from})"
            out.append(rule_reason("power_out_of_range", seen))
        elif gpu.power_limit_w is not None:
            high = LIMIT_CEILING * gpu.power_limit_w
            if gpu.mean_power_w > high:
                seen = f"GPU position {k}: mean {gpu.mean_power_w:.1f} W > {high:.1f} W"
                out.append(rule_reason("power_out_of_range", seen))
    return out


def _temperature(ev: GpuEvidence) -> list[ValidityReason]:
    out = []
    for k, gpu in enumerate(ev.gpus):
        temps = list(gpu.temperatures_c)
        if len(temps) < 4:
            continue
        second_half = temps[len(temps) // 2 :]
        rise = second_half[-1] - second_half[0]
        if rise > DRIFT_C:
            out.append(rule_reason("temperature_drift", f"GPU position {k} rose {rise:.0f} C"))
    return out


def cpu_validity(energy_reason: str | None, window_s: float) -> Validity:
    """The RAPL figures: measured, over a long enough window (a host other runs shared is the
    host's to say: `ExperimentResult.with_host_shared`)."""
    if energy_reason is not None:
        return Validity.of([ValidityReason(code="energy_unavailable", detail=energy_reason)])
    found = []
    if window_s < MIN_WINDOW_S:
        found.append(rule_reason("window_short", f"window {window_s:.2f} s"))
    return Validity.of(found)


def largest_gap_s(times_s: Sequence[float], start_s: float, end_s: float) -> float | None:
    """Longest time between successive samples across [start_s, end_s], the samples just
    outside each edge included; None when no sample lies at or beyond an edge."""
    ordered = sorted(times_s)
    before = [t for t in ordered if t <= start_s]
    after = [t for t in ordered if t >= end_s]
    if not before or not after:
        return None
    span = [before[-1], *(t for t in ordered if start_s < t < end_s), after[0]]
    return max((b - a for a, b in itertools.pairwise(span)), default=0.0)
