"""`energy_between(start, end)`: the GPU energy of any window, by one source rule.

1. NVML's total-energy counter: read at the window's edges where the caller read it there
   (a window fixed in advance: offline), else interpolated at the edges between the sampler's
   counter readings (a window chosen after the fact: serving's steady state, its slices);
2. else the integral of the sampled power over the window;
3. else null, with why neither could be had.

Every GPU takes the same source, so a total never mixes a counter with an integral. Zeus's
`PowerMonitor.get_energy(start, end)` is the same shape: a window asked of recorded samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llenergymeasure.contract.result import GpuEnergySource
from llenergymeasure.energy.arithmetic import (
    counter_delta,
    counter_window_j,
    went_back,
    window_energy_j,
)
from llenergymeasure.energy.sampler import Row, rows_by_gpu

NO_COUNTER = "the GPU has no NVML total-energy counter (pre-Volta or unsupported)"
COUNTER_RESET = "the NVML energy counter was reset during the window"
NO_SPAN = "the power samples do not span the window"


@dataclass(frozen=True)
class GpuEnergy:
    source: GpuEnergySource
    per_gpu_j: list[float] | None  # in the order of the GPUs asked for
    reason: str | None  # why per_gpu_j is None
    counter_reset: bool = False  # the counter went backwards in the window (not its source)


@dataclass(frozen=True)
class EdgeCounters:
    """Counter readings (mJ, one per GPU) taken at the window's own edges."""

    start_mj: list[float] | None
    end_mj: list[float] | None


def energy_between(
    rows: Sequence[Row],
    gpus: Sequence[int],
    start_s: float,
    end_s: float,
    *,
    edges: EdgeCounters | None = None,
    no_counter: str | None = None,
) -> GpuEnergy:
    """`rows`: the sampler's readings (any phase); `gpus`: the NVML indices metered;
    `no_counter`: why NVML has no counter here, where known."""
    if not gpus:
        return GpuEnergy("unavailable", None, "no GPU was metered")
    why_not_counter = no_counter or NO_COUNTER
    counters, reset = _counters(rows, gpus, start_s, end_s, edges)
    if counters is not None:
        return GpuEnergy("nvml_energy_counter", counters, None)
    if reset:
        why_not_counter = COUNTER_RESET
    integral = power_integral(rows, gpus, start_s, end_s)
    if integral is not None:
        return GpuEnergy("nvml_power_integral", integral, None, reset)
    return GpuEnergy("unavailable", None, f"{why_not_counter}, and {NO_SPAN}", reset)


def _counters(
    rows: Sequence[Row],
    gpus: Sequence[int],
    start_s: float,
    end_s: float,
    edges: EdgeCounters | None,
) -> tuple[list[float] | None, bool]:
    """Per-GPU counter energy (J) and whether a reset spoiled it."""
    if edges is not None and edges.start_mj is not None and edges.end_mj is not None:
        deltas = [counter_delta(a, b) for a, b in zip(edges.start_mj, edges.end_mj, strict=True)]
        if any(d is None for d in deltas):
            return None, True
        return [d / 1000.0 for d in deltas if d is not None], False
    by_gpu = rows_by_gpu(rows)
    found: list[float] = []
    for gpu in gpus:
        readings = [(r.t_s, r.sample.energy_mj) for r in by_gpu.get(gpu, [])]
        if not readings or any(mj is None for _, mj in readings):
            return None, False
        times, counters = [t for t, _ in readings], [mj for _, mj in readings]
        energy = counter_window_j(times, counters, start_s, end_s)  # type: ignore[arg-type]
        if energy is None:
            return None, went_back(times, counters, start_s, end_s)  # type: ignore[arg-type]
        found.append(energy)
    return found, False


def power_integral(
    rows: Sequence[Row], gpus: Sequence[int], start_s: float, end_s: float
) -> list[float] | None:
    """Per-GPU energy (J) of the sampled power over the window; None where the samples of a
    GPU do not span it."""
    by_gpu = rows_by_gpu(rows)
    found: list[float] = []
    for gpu in gpus:
        power = [
            (r.t_s, r.sample.power_w) for r in by_gpu.get(gpu, []) if r.sample.power_w is not None
        ]
        energy = window_energy_j([t for t, _ in power], [p for _, p in power], start_s, end_s)  # type: ignore[misc]
        if energy is None:
            return None
        found.append(energy)
    return found
