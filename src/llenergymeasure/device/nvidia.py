"""NVIDIA GPUs through NVML (pynvml, from `nvidia-ml-py`): the only module that imports it.

pynvml is imported and NVML initialised on first use, once per process, and shut down at exit;
CPU images may lack the library, which `GpuLibraryMissing` says instead of a crash. Every NVML
error leaves as the `GpuError` kind that `ERRORS` names for its code.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from llenergymeasure.device.gpu import (
    GPU,
    GpuError,
    GpuInvalidValue,
    GpuLibrary,
    GpuLibraryError,
    GpuLibraryMissing,
    GpuLost,
    GpuNoPermission,
    GpuNotFound,
    GpuNotSupported,
)

T = TypeVar("T")

# NVML's error codes (pynvml.NVML_ERROR_<NAME>): the kind of error each is, and what it means.
# A code not here is a plain `GpuError` with NVML's own words.
ERRORS: dict[str, tuple[type[GpuError], str]] = {
    "NOT_SUPPORTED": (GpuNotSupported, "not supported by this GPU or driver"),
    "NO_PERMISSION": (GpuNoPermission, "not permitted to this process (NVML permission)"),
    "INVALID_ARGUMENT": (GpuInvalidValue, "a value this GPU does not accept"),
    "GPU_IS_LOST": (GpuLost, "the GPU fell off the bus (GPU is lost)"),
    "UNINITIALIZED": (GpuLibraryError, "NVML is not initialised"),
    "DRIVER_NOT_LOADED": (GpuLibraryError, "the NVIDIA driver is not loaded"),
    "LIBRARY_NOT_FOUND": (
        GpuLibraryError,
        "libnvidia-ml was not found (no NVIDIA driver; in a container: no NVIDIA runtime)",
    ),
    "LIB_RM_VERSION_MISMATCH": (
        GpuLibraryError,
        "the NVML library and the driver differ in version",
    ),
    "FUNCTION_NOT_FOUND": (GpuNotSupported, "this driver's NVML lacks the call (driver too old)"),
    "NOT_FOUND": (GpuNotFound, "the GPU or value was not found"),
    "NO_DATA": (GpuError, "no data yet"),
    "TIMEOUT": (GpuError, "NVML timed out"),
    "UNKNOWN": (GpuError, "an unknown NVML error"),
}
MISSING = "pynvml (nvidia-ml-py) is not installed"


def gpu_error(nv: Any, error: BaseException) -> GpuError:
    """The `GpuError` for a pynvml error (`nv`: the pynvml module it came from)."""
    code = getattr(error, "value", None)
    for name, (kind, meaning) in ERRORS.items():
        if code is not None and code == getattr(nv, f"NVML_ERROR_{name}", None):
            return kind(meaning, code=code, name=f"NVML_ERROR_{name}")
    return GpuError(f"NVML error: {error}", code=code)


@contextmanager
def _mapped(nv: Any) -> Iterator[None]:
    """NVML's errors inside, raised as `GpuError`s."""
    try:
        yield
    except nv.NVMLError as error:
        raise gpu_error(nv, error) from None


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def cuda_order(count: int) -> list[int]:
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


class Nvml(GpuLibrary):
    """NVML for this process. `load`: how pynvml is imported (a test passes a stand-in)."""

    name = "NVML"

    def __init__(self, load: Callable[[], Any] = _import_pynvml) -> None:
        self._load = load
        self._nv: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        """pynvml with NVML initialised: the first call initialises (a failure is retried by the
        next call), later calls reuse it."""
        with self._lock:
            if self._nv is None:
                try:
                    nv = self._load()
                except ImportError:
                    raise GpuLibraryMissing(MISSING) from None
                with _mapped(nv):
                    nv.nvmlInit()
                atexit.register(_shutdown, nv)
                self._nv = nv
            return self._nv

    def gpus(self) -> list[GPU]:
        nv = self._open()
        with _mapped(nv):
            count = int(nv.nvmlDeviceGetCount())
        return [NvidiaGpu(nv, index) for index in range(count)]

    def visible_gpus(self) -> list[GPU]:
        gpus = self.gpus()
        return [gpus[index] for index in cuda_order(len(gpus))]


def _shutdown(nv: Any) -> None:
    with suppress(nv.NVMLError):  # the process is ending; the driver releases NVML's state
        nv.nvmlShutdown()


NVML = Nvml()  # this process's


def _text(value: str | bytes) -> str:
    """pynvml's strings (bytes from versions before 11.5)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class NvidiaGpu(GPU):
    """One NVIDIA GPU; its NVML handle is taken on the first call (a lost GPU fails its own
    calls, not its neighbours')."""

    instant_power_method = "NVML field NVML_FI_DEV_POWER_INSTANT (instantaneous power)"
    average_power_method = "nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer)"
    # GetPowerUsage averages over 1 s on Ampere and newer (taken as 1 s on all).
    average_power_period_s = 1.0

    def __init__(self, nv: Any, index: int) -> None:
        super().__init__(index)
        self._nv = nv
        self._handle: Any = None

    def _query(self, call: Callable[..., T], *args: Any) -> T:
        """`call(handle, *args)`, NVML's errors as `GpuError`s."""
        with _mapped(self._nv):
            if self._handle is None:
                self._handle = self._nv.nvmlDeviceGetHandleByIndex(self.index)
            return call(self._handle, *args)

    def uuid(self) -> str:
        return _text(self._query(self._nv.nvmlDeviceGetUUID))

    def name(self) -> str:
        return _text(self._query(self._nv.nvmlDeviceGetName))

    def memory_total_mb(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetMemoryInfo).total / 2**20)

    def driver_version(self) -> str:
        with _mapped(self._nv):
            return _text(self._nv.nvmlSystemGetDriverVersion())

    def power_instant_w(self) -> float:
        nv = self._nv
        (value,) = self._query(nv.nvmlDeviceGetFieldValues, [nv.NVML_FI_DEV_POWER_INSTANT])
        if value.nvmlReturn != nv.NVML_SUCCESS:
            raise gpu_error(nv, nv.NVMLError(value.nvmlReturn))
        return float(value.value.uiVal) / 1000.0

    def power_average_w(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetPowerUsage)) / 1000.0

    def energy_mj(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetTotalEnergyConsumption))

    def temperature_c(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetTemperature, self._nv.NVML_TEMPERATURE_GPU))

    def sm_clock_mhz(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetClockInfo, self._nv.NVML_CLOCK_SM))

    def utilisation_pct(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetUtilizationRates).gpu)

    def memory_used_mb(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetMemoryInfo).used / 2**20)

    def clock_event_reasons(self) -> int:
        return int(self._query(self._nv.nvmlDeviceGetCurrentClocksEventReasons))

    def compute_pids(self) -> list[int]:
        return sorted(p.pid for p in self._query(self._nv.nvmlDeviceGetComputeRunningProcesses))

    def persistence_mode(self) -> bool:
        return bool(self._query(self._nv.nvmlDeviceGetPersistenceMode) == 1)

    def mig_mode(self) -> bool:
        current, _pending = self._query(self._nv.nvmlDeviceGetMigMode)
        return bool(current == self._nv.NVML_DEVICE_MIG_ENABLE)

    def enforced_power_limit_w(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetEnforcedPowerLimit)) / 1000.0

    def power_limit_w(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetPowerManagementLimit)) / 1000.0

    def power_limit_range_w(self) -> tuple[float, float]:
        low, high = self._query(self._nv.nvmlDeviceGetPowerManagementLimitConstraints)
        return low / 1000.0, high / 1000.0

    def default_power_limit_w(self) -> float:
        return float(self._query(self._nv.nvmlDeviceGetPowerManagementDefaultLimit)) / 1000.0

    def set_power_limit_w(self, watts: float) -> None:
        self._query(self._nv.nvmlDeviceSetPowerManagementLimit, round(watts * 1000))

    def graphics_clock_range_mhz(self) -> tuple[int, int]:
        memory = max(self._query(self._nv.nvmlDeviceGetSupportedMemoryClocks))
        clocks = self._query(self._nv.nvmlDeviceGetSupportedGraphicsClocks, memory)
        return int(min(clocks)), int(max(clocks))

    def lock_clocks_mhz(self, low: int, high: int) -> None:
        self._query(self._nv.nvmlDeviceSetGpuLockedClocks, low, high)

    def reset_clocks(self) -> None:
        self._query(self._nv.nvmlDeviceResetGpuLockedClocks)
