"""NVML access (pynvml from `nvidia-ml-py`), imported guarded: CPU images may lack the library."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any

from llenergymeasure.contract.result import GpuInfo
from llenergymeasure.energy.uncertainty import update_period_s

# NVML clock-event ("throttle") reason bits, as documented in nvml.h.
THROTTLE_BITS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
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


def throttle_names(bitmask: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if bitmask & bit]


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


def _visible_indices(count: int) -> list[int]:
    """NVML indices of the GPUs CUDA sees, in CUDA order (CUDA_VISIBLE_DEVICES may reorder)."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None or raw.strip() in ("", "all"):
        return list(range(count))
    indices = []
    for item in raw.split(","):
        item = item.strip()
        if item.isdigit() and int(item) < count:
            indices.append(int(item))
        else:
            return list(range(count))  # UUID or MIG forms: NVML sees only granted GPUs anyway
    return indices


class Nvml:
    """The GPUs this experiment uses (the first `gpu_count` visible to CUDA)."""

    def __init__(self, pynvml: Any, handles: list[tuple[int, Any]]) -> None:
        self._nvml = pynvml
        self._handles = handles
        self._instant_power = self._probe_instant_power()
        self.counter_reason: str | None = None

    @classmethod
    def open(cls, gpu_count: int) -> tuple[Nvml | None, str | None]:
        """(Nvml, None) or (None, reason it cannot be used)."""
        if gpu_count == 0:
            return None, "gpu_count is 0: the experiment ran on CPU"
        try:
            import pynvml
        except ImportError:
            return None, "pynvml (nvidia-ml-py) is not installed in this image"
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            return None, f"NVML could not be initialised: {nvml_reason(exc)}"
        indices = _visible_indices(count)[:gpu_count]
        if len(indices) < gpu_count:
            return None, f"gpu_count is {gpu_count} but NVML sees {count} GPU(s)"
        handles = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
        return cls(pynvml, handles), None

    def _probe_instant_power(self) -> bool:
        """Ampere+ report a 1 s average via GetPowerUsage; the instant field is the truer sample."""
        try:
            return self._instant_field(self._handles[0][1]) is not None
        except Exception:
            return False

    def _instant_field(self, handle: Any) -> float | None:
        nv = self._nvml
        (value,) = nv.nvmlDeviceGetFieldValues(handle, [nv.NVML_FI_DEV_POWER_INSTANT])
        if value.nvmlReturn != nv.NVML_SUCCESS:
            return None
        return float(value.value.uiVal) / 1000.0

    @property
    def count(self) -> int:
        return len(self._handles)

    @property
    def power_method(self) -> str:
        """How power samples are read, for the result's record."""
        if self._instant_power:
            return "NVML field NVML_FI_DEV_POWER_INSTANT (instantaneous power)"
        return "nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer)"

    @property
    def power_average_s(self) -> float:
        """The period one power reading averages over: the instant field's is the sampler's
        own; GetPowerUsage averages over 1 s on Ampere and newer (taken as 1 s on all)."""
        return 0.0 if self._instant_power else 1.0

    def driver_version(self) -> str | None:
        return _try(lambda: str(self._nvml.nvmlSystemGetDriverVersion()))

    @functools.cached_property
    def _static(self) -> list[GpuInfo]:
        nv = self._nvml
        out = []
        for index, h in self._handles:
            limit = _try(lambda h=h: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0)
            persistence = _try(lambda h=h: nv.nvmlDeviceGetPersistenceMode(h) == 1)
            mig = _try(lambda h=h: nv.nvmlDeviceGetMigMode(h)[0] == nv.NVML_DEVICE_MIG_ENABLE)
            out.append(
                GpuInfo(
                    index=index,
                    name=str(nv.nvmlDeviceGetName(h)),
                    uuid=str(nv.nvmlDeviceGetUUID(h)),
                    memory_total_mb=nv.nvmlDeviceGetMemoryInfo(h).total / 2**20,
                    power_limit_w=limit,
                    persistence_mode=persistence,
                    mig_mode=mig,
                )
            )
        return out

    def static_info(self) -> list[GpuInfo]:
        """The GPUs' static facts, read once: the host sets power limits before the container
        starts, so nothing here changes during a run."""
        return list(self._static)

    def energy_counters_mj(self) -> list[float] | None:
        """Total-energy counters (mJ since driver load), one per GPU; None if any lacks one
        (`counter_reason` then says why)."""
        try:
            return [
                float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for _, h in self._handles
            ]
        except self._nvml.NVMLError as error:
            self.counter_reason = f"the NVML total-energy counter: {nvml_reason(error)}"
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
        for k, (index, _) in enumerate(self._handles):
            period = update_period_s(times, [r[k] for r in readings])
            if period is not None:
                periods[index] = period
        return periods

    def sample(self) -> list[GpuSample]:
        nv = self._nvml
        out = []
        for _, h in self._handles:
            if self._instant_power:
                power = _try(lambda h=h: self._instant_field(h))
            else:
                power = _try(lambda h=h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)
            out.append(
                GpuSample(
                    power_w=power,
                    temperature_c=_try(
                        lambda h=h: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
                    ),
                    sm_clock_mhz=_try(
                        lambda h=h: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
                    ),
                    utilisation_pct=_try(
                        lambda h=h: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                    ),
                    memory_used_mb=_try(lambda h=h: nv.nvmlDeviceGetMemoryInfo(h).used / 2**20),
                    throttle_bitmask=_try(
                        lambda h=h: int(nv.nvmlDeviceGetCurrentClocksEventReasons(h))
                    ),
                    energy_mj=_try(lambda h=h: float(nv.nvmlDeviceGetTotalEnergyConsumption(h))),
                )
            )
        return out

    def compute_process_counts(self) -> list[int]:
        """Compute processes on each GPU (this experiment's own included once it holds a
        context)."""
        counts = []
        for _, h in self._handles:
            procs = _try(lambda h=h: self._nvml.nvmlDeviceGetComputeRunningProcesses(h))
            counts.append(len(procs) if procs is not None else 0)
        return counts

    def close(self) -> None:
        _try(self._nvml.nvmlShutdown)


# NVML's error codes (pynvml.NVML_ERROR_<NAME>) -> what they mean for a measurement.
ERROR_REASONS: dict[str, str] = {
    "NOT_SUPPORTED": "not supported by this GPU or driver",
    "NO_PERMISSION": "not permitted to this process (NVML permission)",
    "GPU_IS_LOST": "the GPU fell off the bus (GPU is lost)",
    "UNINITIALIZED": "NVML is not initialised",
    "DRIVER_NOT_LOADED": "the NVIDIA driver is not loaded",
    "LIBRARY_NOT_FOUND": "libnvidia-ml is not in the container (NVIDIA runtime missing?)",
    "LIB_RM_VERSION_MISMATCH": "the NVML library and the driver differ in version",
    "FUNCTION_NOT_FOUND": "this driver's NVML lacks the call (driver too old)",
    "NOT_FOUND": "the GPU or value was not found",
    "NO_DATA": "no data yet",
    "TIMEOUT": "NVML timed out",
    "UNKNOWN": "an unknown NVML error",
}


def nvml_reason(error: BaseException) -> str:
    """A named reason for an NVML error (its code's meaning), for a null figure's `_reason`."""
    value = getattr(error, "value", None)
    try:
        import pynvml
    except ImportError:
        return str(error)
    names = {
        getattr(pynvml, f"NVML_ERROR_{name}", None): (name, text)
        for name, text in ERROR_REASONS.items()
    }
    if value in names:
        name, text = names[value]
        return f"NVML_ERROR_{name}: {text}"
    return f"NVML error: {error}"


def _try(read: Any) -> Any:
    """One NVML query; None where the GPU or driver cannot answer it."""
    try:
        return read()
    except Exception:
        return None
