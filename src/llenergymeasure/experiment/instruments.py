"""The experiment's instruments: its GPUs, the power sampler, RAPL and the energy meter over them,
opened for the container's GPUs and closed together."""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.energy.gpus import MeteredGpus
from llenergymeasure.energy.meter import EnergyMeter
from llenergymeasure.energy.rapl import Rapl
from llenergymeasure.energy.sampler import (
    DEFAULT_INTERVAL_S,
    PowerSampler,
    Row,
    temperatures_by_gpu,
)


@dataclass
class Instruments:
    gpus: MeteredGpus | None
    gpu_reason: str | None
    sampler: PowerSampler | None
    rapl: Rapl
    meter: EnergyMeter

    @classmethod
    def open(cls, gpu_count: int, interval_s: float = DEFAULT_INTERVAL_S) -> Instruments:
        gpus, reason = MeteredGpus.open(gpu_count)
        indices = gpus.indices if gpus is not None else []
        sampler = PowerSampler(gpus.sample, indices, interval_s) if gpus is not None else None
        if sampler is not None:
            sampler.start()
        rapl = Rapl()
        return cls(gpus, reason, sampler, rapl, EnergyMeter(gpus, reason, sampler, rapl, indices))

    def rows(self) -> list[Row]:
        """The sampler's readings so far (a copy: the sampler keeps appending)."""
        return self.meter.rows()

    def set_phase(self, phase: str) -> None:
        if self.sampler is not None:
            self.sampler.set_phase(phase)

    def counter_update(self, duration_s: float) -> tuple[float | None, str | None]:
        """The GPUs' energy counter's update period (s, the slowest GPU's), polled for
        `duration_s`; or None and why."""
        if self.gpus is None:
            return None, self.gpu_reason
        periods = self.gpus.poll_counters(duration_s)
        if periods is None:
            return None, self.gpus.counter_reason
        if not periods:
            return None, f"the counter changed fewer than three times in {duration_s:g} s"
        return max(periods.values()), None

    def temperatures_c(self) -> list[float | None]:
        """Each GPU's latest sampled temperature, in the container's order (none: no GPU)."""
        if self.gpus is None:
            return []
        latest = temperatures_by_gpu(self.rows())
        return [latest[i][-1] if latest.get(i) else None for i in self.gpus.indices]

    def gpu_process_counts(self) -> list[int]:
        return self.gpus.compute_process_counts() if self.gpus is not None else []

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
