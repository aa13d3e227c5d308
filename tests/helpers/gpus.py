"""An in-memory stand-in for NVML's settable GPU state (unit tests only: the real calls run
where a GPU is lent). Each GPU has a power limit within a range, a clock lock, a UUID."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llenergymeasure.orchestrator.machine.gpu_settings import PERMISSION_HINT, GpuSettingError


@dataclass
class Gpu:
    uuid: str
    power_limit_w: float = 350.0
    power_range_w: tuple[float, float] = (100.0, 400.0)
    clocks_mhz: tuple[int, int] = (210, 1980)
    locked: tuple[int, int] | None = None


@dataclass
class InMemoryGpus:
    gpus: dict[int, Gpu]
    permitted: bool = True
    step_w: float = 0.0  # >0: the driver rounds a limit to this step (a clamp)
    before_set: Callable[[int, float], None] | None = None  # a hook (e.g. fail, or look)
    calls: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, n: int, **kw: object) -> InMemoryGpus:
        return cls({k: Gpu(f"GPU-{k}") for k in range(n)}, **kw)  # type: ignore[arg-type]

    def _may(self, what: str) -> None:
        if not self.permitted:
            raise GpuSettingError(f"{what}: no permission", hint=PERMISSION_HINT)

    def uuid(self, index: int) -> str:
        return self.gpus[index].uuid

    def power_limit_w(self, index: int) -> float:
        return self.gpus[index].power_limit_w

    def power_limit_range_w(self, index: int) -> tuple[float, float]:
        return self.gpus[index].power_range_w

    def set_power_limit_w(self, index: int, watts: float) -> None:
        self._may(f"setting GPU {index}'s power limit")
        if self.before_set is not None:
            self.before_set(index, watts)
        low, high = self.gpus[index].power_range_w
        if not low <= watts <= high:
            raise GpuSettingError(f"GPU {index}: {watts} W is out of range")
        if self.step_w:
            watts = round(watts / self.step_w) * self.step_w
        self.gpus[index].power_limit_w = watts
        self.calls.append(f"power {index} {watts:g}")

    def clock_range_mhz(self, index: int) -> tuple[int, int]:
        return self.gpus[index].clocks_mhz

    def lock_clocks_mhz(self, index: int, low: int, high: int) -> None:
        self._may(f"locking GPU {index}'s clocks")
        self.gpus[index].locked = (low, high)
        self.calls.append(f"lock {index} {low}-{high}")

    def reset_clocks(self, index: int) -> None:
        self._may(f"unlocking GPU {index}'s clocks")
        self.gpus[index].locked = None
        self.calls.append(f"reset {index}")
