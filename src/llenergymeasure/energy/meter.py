"""EnergyMeter: named begin/end measurement windows over every source that can be read.

Modelled on the begin/end window design of Zeus's ZeusMonitor: a window records counter readings
at its edges and takes differences at the end; nothing runs inside the measured code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from llenergymeasure.contract.result import GpuEnergySource
from llenergymeasure.energy.arithmetic import sum_devices
from llenergymeasure.energy.between import (
    EdgeCounters,
    GpuEnergy,
    energy_between,
    power_integral,
)
from llenergymeasure.energy.gpus import MeteredGpus
from llenergymeasure.energy.rapl import Rapl, RaplReading
from llenergymeasure.energy.sampler import PowerSampler, Row


@dataclass(frozen=True)
class WindowEnergy:
    name: str
    start_s: float
    end_s: float
    gpu_source: GpuEnergySource
    per_gpu_j: list[float] | None
    gpu_reason: str | None
    cpu_package_j: float | None
    cpu_package_reason: str | None
    dram_j: float | None
    dram_reason: str | None
    counter_reset: bool = False  # the GPU counter went backwards inside the window
    edges_read: bool = False  # the counters were read at the window's edges (not interpolated)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def gpu_j(self) -> float | None:
        return sum_devices(self.per_gpu_j) if self.per_gpu_j is not None else None


@dataclass(frozen=True)
class _Start:
    t_s: float
    counters_mj: list[float] | None
    rapl: RaplReading | None


class EnergyMeter:
    def __init__(
        self,
        gpus: MeteredGpus | None,
        gpu_reason: str | None,
        sampler: PowerSampler | None,
        rapl: Rapl,
        gpu_indices: list[int],
    ) -> None:
        self._metered = gpus
        self._gpu_reason = gpu_reason
        self._sampler = sampler
        self._rapl = rapl
        self._gpus = gpu_indices
        self._open: dict[str, _Start] = {}

    def begin(self, name: str) -> None:
        if self._sampler is not None:
            self._sampler.set_phase(name)
        counters = self._metered.energy_counters_mj() if self._metered is not None else None
        rapl = self._rapl.read() if self._rapl.packages or self._rapl.drams else None
        self._open[name] = _Start(time.perf_counter(), counters, rapl)

    def end(self, name: str) -> WindowEnergy:
        start = self._open.pop(name)
        end_t = time.perf_counter()
        counters = self._metered.energy_counters_mj() if self._metered is not None else None
        rapl = self._rapl.read() if start.rapl is not None else None
        if self._sampler is not None:
            self._sampler.set_phase("between")
        gpu = self.gpu_energy(start.t_s, end_t, EdgeCounters(start.counters_mj, counters))
        package_j, dram_j = (
            self._rapl.energy_j(start.rapl, rapl)
            if start.rapl is not None and rapl is not None
            else (None, None)
        )
        return WindowEnergy(
            name=name,
            start_s=start.t_s,
            end_s=end_t,
            gpu_source=gpu.source,
            per_gpu_j=gpu.per_gpu_j,
            gpu_reason=gpu.reason,
            cpu_package_j=package_j,
            cpu_package_reason=None if package_j is not None else self._rapl.package_reason,
            dram_j=dram_j,
            dram_reason=None if dram_j is not None else self._rapl.dram_reason,
            counter_reset=gpu.counter_reset,
            edges_read=start.counters_mj is not None and counters is not None,
        )

    def gpu_j_so_far(self, name: str) -> float | None:
        """The GPUs' energy since window `name` began, the window left open (a slice of it);
        None where it cannot be read. Read from the counters at both edges where they exist."""
        start = self._open[name]
        if self._metered is None:
            return None
        now = time.perf_counter()
        counters = self._metered.energy_counters_mj()
        gpu = self.gpu_energy(start.t_s, now, EdgeCounters(start.counters_mj, counters))
        return sum_devices(gpu.per_gpu_j or [])

    def gpu_energy(
        self,
        start_s: float,
        end_s: float,
        edges: EdgeCounters | None = None,
        rows: Sequence[Row] | None = None,
    ) -> GpuEnergy:
        """The GPUs' energy over [start_s, end_s] (perf_counter clock), by the one source rule
        (`between.energy_between`); `edges`: counter readings taken at the window's edges;
        `rows`: the sampler's readings when the caller holds them already (many windows)."""
        if self._metered is None:
            return GpuEnergy("unavailable", None, self._gpu_reason)
        return energy_between(
            self.rows() if rows is None else rows,
            self._gpus,
            start_s,
            end_s,
            edges=edges,
            no_counter=self._metered.counter_reason,
        )

    def power_integral(self, start_s: float, end_s: float) -> list[float] | None:
        """The sampled power's integral over the window, per GPU (the counter's check)."""
        return power_integral(self.rows(), self._gpus, start_s, end_s)

    def rows(self) -> list[Row]:
        """The sampler's readings so far (a copy: the sampler keeps appending)."""
        return list(self._sampler.rows) if self._sampler is not None else []
