"""One physical GPU, whatever its vendor: what llem reads from it and the settings the host
makes, each a method wrapping one vendor call, in the project's units (W, mJ, MHz, °C, MB of
2**20 bytes). Modelled on Zeus's `zeus.device.gpu.GPU`.

A call the GPU or its driver cannot answer raises a `GpuError` of the kind the vendor's code
names (`GpuNotSupported`, `GpuNoPermission`, ...), carrying that code and its meaning; a vendor
module maps its codes onto these kinds in one table. The interface reads values; what they
mean for a measurement (which power reading to prefer, which slowdowns spoil a window) is
decided by its readers.
"""

from __future__ import annotations

import abc
from typing import ClassVar

# The clock-event ("throttle") reasons bitmask every vendor reports in: NVML's layout, as
# documented in nvml.h (another vendor maps its reasons onto these bits).
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


def throttle_names(bitmask: int) -> list[str]:
    return [name for bit, name in THROTTLE_BITS.items() if bitmask & bit]


class GpuError(Exception):
    """A GPU call that failed: the vendor's error code and name (None where the vendor's
    library gave none) and what it means. `str()` is the reason a null figure carries."""

    def __init__(self, meaning: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(f"{name}: {meaning}" if name else meaning)
        self.meaning, self.code, self.name = meaning, code, name


class GpuNotSupported(GpuError):
    """This GPU or its driver cannot answer or do it."""


class GpuNoPermission(GpuError):
    """This process may not do it (setting a GPU needs root)."""


class GpuInvalidValue(GpuError):
    """A value the GPU does not accept (e.g. a power limit outside its range)."""


class GpuNotFound(GpuError):
    """No such GPU, or no such value on it."""


class GpuLost(GpuError):
    """The GPU stopped answering (fell off the bus)."""


class GpuLibraryError(GpuError):
    """The vendor's library or driver cannot be used here (not loaded, mismatched versions,
    not initialised)."""


class GpuLibraryMissing(GpuLibraryError):
    """The vendor's Python library is not installed."""


class GpuLibrary(abc.ABC):
    """A vendor's library: the GPUs it sees on this machine. Both calls raise
    `GpuLibraryMissing` where the library is not installed, another `GpuError` where it cannot
    start."""

    name: ClassVar[str]  # as a reason names it ("NVML")

    @abc.abstractmethod
    def gpus(self) -> list[GPU]:
        """Every GPU it sees, in its index order."""

    @abc.abstractmethod
    def visible_gpus(self) -> list[GPU]:
        """The GPUs this process's compute runtime (CUDA, ...) sees, in the runtime's order."""


class GPU(abc.ABC):
    """One GPU by its index in the vendor's library on this machine (on the host: the index
    `nvidia-smi` lists; in a container: among the GPUs granted to it)."""

    # How `power_instant_w` and `power_average_w` read, for a result's record; the period the
    # average covers (s).
    instant_power_method: ClassVar[str]
    average_power_method: ClassVar[str]
    average_power_period_s: ClassVar[float]

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.index})"

    # Identity.
    @abc.abstractmethod
    def uuid(self) -> str: ...

    @abc.abstractmethod
    def name(self) -> str: ...

    @abc.abstractmethod
    def memory_total_mb(self) -> float: ...

    @abc.abstractmethod
    def driver_version(self) -> str: ...

    # Readings.
    @abc.abstractmethod
    def power_instant_w(self) -> float:
        """The power draw now."""

    @abc.abstractmethod
    def power_average_w(self) -> float:
        """The driver's power reading, averaged over `average_power_period_s`."""

    @abc.abstractmethod
    def energy_mj(self) -> float:
        """The total-energy counter: mJ since the driver loaded."""

    @abc.abstractmethod
    def temperature_c(self) -> float: ...

    @abc.abstractmethod
    def sm_clock_mhz(self) -> float: ...

    @abc.abstractmethod
    def utilisation_pct(self) -> float: ...

    @abc.abstractmethod
    def memory_used_mb(self) -> float: ...

    @abc.abstractmethod
    def clock_event_reasons(self) -> int:
        """Why the clocks are held down now, as a `THROTTLE_BITS` bitmask."""

    @abc.abstractmethod
    def compute_pids(self) -> list[int]:
        """The compute processes on the GPU (PIDs as the library sees them), sorted."""

    @abc.abstractmethod
    def persistence_mode(self) -> bool: ...

    @abc.abstractmethod
    def mig_mode(self) -> bool: ...

    @abc.abstractmethod
    def enforced_power_limit_w(self) -> float:
        """The power limit in force (the lowest of every limit set on the GPU)."""

    # Settings the host makes (setting needs root).
    @abc.abstractmethod
    def power_limit_w(self) -> float:
        """The power management limit set now."""

    @abc.abstractmethod
    def power_limit_range_w(self) -> tuple[float, float]:
        """The lowest and highest power limit the GPU accepts."""

    @abc.abstractmethod
    def default_power_limit_w(self) -> float:
        """The limit the driver sets at boot (what "no limit set" means)."""

    @abc.abstractmethod
    def set_power_limit_w(self, watts: float) -> None: ...

    @abc.abstractmethod
    def graphics_clock_range_mhz(self) -> tuple[int, int]:
        """The slowest and fastest supported graphics clock (at the fastest memory clock)."""

    @abc.abstractmethod
    def lock_clocks_mhz(self, low: int, high: int) -> None:
        """Hold the graphics clock within [low, high]."""

    @abc.abstractmethod
    def reset_clocks(self) -> None:
        """Undo `lock_clocks_mhz`."""
