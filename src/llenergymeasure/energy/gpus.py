"""The GPUs an experiment meters (the first `gpu_count` its compute runtime sees), read through
the device interface: power samples, the total-energy counters and their update period, the
GPUs' static facts and their compute processes. A reading a GPU cannot give is None."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from llenergymeasure.contract.result import GpuInfo
from llenergymeasure.device import GPU, VENDORS, GpuError, GpuLibrary, visible_gpus
from llenergymeasure.energy.uncertainty import update_period_s

T = TypeVar("T")

# Reasons that mean the work ran slower than the clocks allowed (idle and settings do not).
PERFORMANCE_THROTTLES = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)
# The GPU held at its power limit: the limit is recorded with the run (and may be its study
# axis), so a figure under it is a reading at that limit, not a faulty one.
AT_POWER_LIMIT = "sw_power_cap"


@dataclass(frozen=True)
class GpuSample:
    """One sampler reading of one GPU; None where the GPU does not report that quantity."""

    power_w: float | None
    temperature_c: float | None
    sm_clock_mhz: float | None
    utilisation_pct: float | None
    memory_used_mb: float | None
    throttle_bitmask: int | None
    energy_mj: float | None = None  # the total-energy counter, mJ (a serving window's energy)


class MeteredGpus:
    """The GPUs this experiment uses, in its compute runtime's order."""

    def __init__(self, gpus: Sequence[GPU]) -> None:
        self._gpus = list(gpus)
        self._instant_power = self._probe_instant_power()
        self.counter_reason: str | None = None

    @classmethod
    def open(
        cls, gpu_count: int, vendors: Mapping[str, GpuLibrary] = VENDORS
    ) -> tuple[MeteredGpus | None, str | None]:
        """(MeteredGpus, None) or (None, reason they cannot be used)."""
        if gpu_count == 0:
            return None, "gpu_count is 0: the experiment ran on CPU"
        found = visible_gpus(vendors)
        if isinstance(found, str):
            return None, found
        if len(found) < gpu_count:
            return None, f"gpu_count is {gpu_count} but NVML sees {len(found)} GPU(s)"
        return cls(found[:gpu_count]), None

    def _probe_instant_power(self) -> bool:
        """Ampere+ report a 1 s average as the driver's power; the instant reading is the truer
        sample where the GPU has one."""
        return _read(self._gpus[0].power_instant_w) is not None

    @property
    def count(self) -> int:
        return len(self._gpus)

    @property
    def indices(self) -> list[int]:
        return [gpu.index for gpu in self._gpus]

    @property
    def power_method(self) -> str:
        """How power samples are read, for the result's record."""
        gpu = self._gpus[0]
        return gpu.instant_power_method if self._instant_power else gpu.average_power_method

    @property
    def power_average_s(self) -> float:
        """The period one power reading averages over: the instant reading's is the sampler's
        own; the driver's average is the GPU's stated period."""
        return 0.0 if self._instant_power else self._gpus[0].average_power_period_s

    def driver_version(self) -> str | None:
        return _read(self._gpus[0].driver_version)

    @functools.cached_property
    def _static(self) -> list[GpuInfo]:
        return [
            GpuInfo(
                index=gpu.index,
                name=gpu.name(),
                uuid=gpu.uuid(),
                memory_total_mb=gpu.memory_total_mb(),
                power_limit_w=_read(gpu.enforced_power_limit_w),
                persistence_mode=_read(gpu.persistence_mode),
                mig_mode=_read(gpu.mig_mode),
            )
            for gpu in self._gpus
        ]

    def static_info(self) -> list[GpuInfo]:
        """The GPUs' static facts, read once: the host sets power limits before the container
        starts, so nothing here changes during a run."""
        return list(self._static)

    def energy_counters_mj(self) -> list[float] | None:
        """Total-energy counters (mJ since driver load), one per GPU; None if any lacks one
        (`counter_reason` then says why)."""
        try:
            return [gpu.energy_mj() for gpu in self._gpus]
        except GpuError as error:
            self.counter_reason = f"the NVML total-energy counter: {error}"
            return None

    def poll_counters(self, duration_s: float, every_s: float = 0.002) -> dict[int, float] | None:
        """The counters' update period per GPU (s), from polling them every `every_s` for
        `duration_s`; None without a counter. A GPU whose counter changed fewer than three
        times is left out."""
        times: list[float] = []
        readings: list[list[float]] = []
        end = time.perf_counter() + duration_s
        while time.perf_counter() < end:
            counters = self.energy_counters_mj()
            if counters is None:
                return None
            times.append(time.perf_counter())
            readings.append(counters)
            time.sleep(every_s)
        periods = {}
        for k, gpu in enumerate(self._gpus):
            period = update_period_s(times, [r[k] for r in readings])
            if period is not None:
                periods[gpu.index] = period
        return periods

    def sample(self) -> list[GpuSample]:
        return [
            GpuSample(
                power_w=_read(gpu.power_instant_w if self._instant_power else gpu.power_average_w),
                temperature_c=_read(gpu.temperature_c),
                sm_clock_mhz=_read(gpu.sm_clock_mhz),
                utilisation_pct=_read(gpu.utilisation_pct),
                memory_used_mb=_read(gpu.memory_used_mb),
                throttle_bitmask=_read(gpu.clock_event_reasons),
                energy_mj=_read(gpu.energy_mj),
            )
            for gpu in self._gpus
        ]

    def compute_process_counts(self) -> list[int]:
        """Compute processes on each GPU (this experiment's own included once it holds a
        context)."""
        counts = []
        for gpu in self._gpus:
            pids = _read(gpu.compute_pids)
            counts.append(len(pids) if pids is not None else 0)
        return counts


def _read(read: Callable[[], T]) -> T | None:
    """One reading; None where the GPU or driver cannot answer it."""
    try:
        return read()
    except GpuError:
        return None
