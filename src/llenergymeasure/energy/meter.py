"""EnergyMeter: named begin/end measurement windows over every source that can be read.

Modelled on the begin/end window design of Zeus's ZeusMonitor: a window records counter readings
at its edges and takes differences at the end; nothing runs inside the measured code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llenergymeasure.contract.result import GpuEnergySource
from llenergymeasure.energy.arithmetic import counter_delta, sum_devices, window_energy_j
from llenergymeasure.energy.nvml import Nvml
from llenergymeasure.energy.rapl import Rapl, RaplReading
from llenergymeasure.energy.sampler import PowerSampler


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
        nvml: Nvml | None,
        nvml_reason: str | None,
        sampler: PowerSampler | None,
        rapl: Rapl,
        gpu_indices: list[int],
    ) -> None:
        self._nvml = nvml
        self._nvml_reason = nvml_reason
        self._sampler = sampler
        self._rapl = rapl
        self._gpus = gpu_indices
        self._open: dict[str, _Start] = {}

    def begin(self, name: str) -> None:
        if self._sampler is not None:
            self._sampler.set_phase(name)
        counters = self._nvml.energy_counters_mj() if self._nvml is not None else None
        rapl = self._rapl.read() if self._rapl.packages or self._rapl.drams else None
        self._open[name] = _Start(time.perf_counter(), counters, rapl)

    def end(self, name: str) -> WindowEnergy:
        start = self._open.pop(name)
        end_t = time.perf_counter()
        counters = self._nvml.energy_counters_mj() if self._nvml is not None else None
        rapl = self._rapl.read() if start.rapl is not None else None
        if self._sampler is not None:
            self._sampler.set_phase("between")
        source, per_gpu, reason = self._gpu_energy(start, end_t, counters)
        package_j, dram_j = (
            self._rapl.energy_j(start.rapl, rapl)
            if start.rapl is not None and rapl is not None
            else (None, None)
        )
        return WindowEnergy(
            name=name,
            start_s=start.t_s,
            end_s=end_t,
            gpu_source=source,
            per_gpu_j=per_gpu,
            gpu_reason=reason,
            cpu_package_j=package_j,
            cpu_package_reason=None if package_j is not None else self._rapl.package_reason,
            dram_j=dram_j,
            dram_reason=None if dram_j is not None else self._rapl.dram_reason,
        )

    def _gpu_energy(
        self, start: _Start, end_t: float, counters: list[float] | None
    ) -> tuple[GpuEnergySource, list[float] | None, str | None]:
        if self._nvml is None:
            return "unavailable", None, self._nvml_reason
        why_not_counter = (
            self._nvml.counter_reason
            or "the GPU has no NVML total-energy counter (pre-Volta or unsupported)"
        )
        if start.counters_mj is not None and counters is not None:
            deltas = [counter_delta(a, b) for a, b in zip(start.counters_mj, counters, strict=True)]
            if all(d is not None for d in deltas):
                return "nvml_energy_counter", [d / 1000.0 for d in deltas if d is not None], None
            why_not_counter = "the NVML energy counter was reset during the window"
        integral = self._integral(start.t_s, end_t)
        if integral is not None:
            return "nvml_power_integral", integral, None
        return (
            "unavailable",
            None,
            f"{why_not_counter}, and the power samples do not span the window",
        )

    def _integral(self, start_s: float, end_s: float) -> list[float] | None:
        if self._sampler is None:
            return None
        per_gpu = []
        for gpu in self._gpus:
            rows = [
                r for r in self._sampler.series(gpu, start_s, end_s) if r.sample.power_w is not None
            ]
            energy = window_energy_j(
                [r.t_s for r in rows], [r.sample.power_w for r in rows], start_s, end_s
            )
            if energy is None:
                return None
            per_gpu.append(energy)
        return per_gpu
