"""In-memory stand-ins for GPUs' settable state (unit tests only: the real calls run where a GPU
is lent). Each GPU has a power limit within a range, a clock lock, a UUID.

`InMemoryGpu` implements the device interface (`llenergymeasure.device.GPU`); with a store, its
state lives in a JSON file that every process loading it shares, so a test can run llem code in
a child process, kill it with SIGKILL and read what it left. `InMemoryGpus` is the same state
behind the host's `GpuControl` protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from llenergymeasure.device import GPU, GpuInvalidValue, GpuNoPermission, GpuNotSupported
from llenergymeasure.orchestrator.machine.gpu_settings import GpuControl


class GpuState(BaseModel):
    """One in-memory GPU's state: what its store holds."""

    uuid: str
    power_limit_w: float = 350.0
    default_power_limit_w: float = 350.0
    power_range_w: tuple[float, float] = (100.0, 400.0)
    clocks_mhz: tuple[int, int] = (210, 1980)
    locked_clocks_mhz: tuple[int, int] | None = None
    compute_pids: list[int] = []
    temperature_c: float = 40.0
    permitted: bool = True  # False: every setting is refused (no root)
    step_w: float = 0.0  # >0: the driver rounds a limit to this step (a clamp)


class _Store(BaseModel):
    gpus: list[GpuState]


NOT_SIMULATED = "not simulated by the in-memory GPU"


class InMemoryGpu(GPU):
    """A GPU whose settable state is `GpuState`; its readings of power, energy, clocks and
    memory raise `GpuNotSupported`. `store`: the JSON file its state lives in (read before
    every call, written by every change), shared by every `InMemoryGpu` of that file and
    index. `before_set(what)` runs before a setting is checked and made (after the permission
    check), with what was asked ("power 250", "lock 210-1500", "reset"); `calls` records what
    landed, in the same words."""

    instant_power_method = "in memory (no power reading)"
    average_power_method = "in memory (no power reading)"
    average_power_period_s = 0.0

    def __init__(
        self,
        index: int,
        state: GpuState,
        store: Path | None = None,
        before_set: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(index)
        self._state, self.store, self.before_set = state, store, before_set
        self.calls: list[str] = []

    @classmethod
    def of(cls, n: int, store: Path | None = None, **state: Any) -> list[InMemoryGpu]:
        """`n` GPUs (UUIDs GPU-0, GPU-1, ...), each with `state`'s values; with `store`, their
        state is written there now."""
        states = [GpuState(uuid=f"GPU-{k}", **state) for k in range(n)]
        if store is not None:
            _write(store, states)
        return [cls(k, s, store) for k, s in enumerate(states)]

    @classmethod
    def load(cls, store: Path) -> list[InMemoryGpu]:
        """The GPUs whose state `store` holds (as another process sees them)."""
        return [cls(k, s, store) for k, s in enumerate(_read(store))]

    @property
    def state(self) -> GpuState:
        if self.store is not None:
            self._state = _read(self.store)[self.index]
        return self._state

    def update(self, **fields: Any) -> None:
        """Change the state (as the driver, or another process, would): persisted at once."""
        self._state = self.state.model_copy(update=fields)
        if self.store is not None:
            states = _read(self.store)
            states[self.index] = self._state
            _write(self.store, states)

    def _may(self, what: str) -> None:
        if not self.state.permitted:
            raise GpuNoPermission("not permitted to this process")
        if self.before_set is not None:
            self.before_set(what)

    def _land(self, what: str, **fields: Any) -> None:
        self.update(**fields)
        self.calls.append(what)

    def uuid(self) -> str:
        return self.state.uuid

    def name(self) -> str:
        return "in-memory GPU"

    def memory_total_mb(self) -> float:
        return 81_559.0

    def driver_version(self) -> str:
        return "in-memory"

    def power_instant_w(self) -> float:
        raise GpuNotSupported(NOT_SIMULATED)

    def power_average_w(self) -> float:
        raise GpuNotSupported(NOT_SIMULATED)

    def energy_mj(self) -> float:
        raise GpuNotSupported(NOT_SIMULATED)

    def temperature_c(self) -> float:
        return self.state.temperature_c

    def sm_clock_mhz(self) -> float:
        raise GpuNotSupported(NOT_SIMULATED)

    def utilisation_pct(self) -> float:
        raise GpuNotSupported(NOT_SIMULATED)

    def memory_used_mb(self) -> float:
        raise GpuNotSupported(NOT_SIMULATED)

    def clock_event_reasons(self) -> int:
        raise GpuNotSupported(NOT_SIMULATED)

    def compute_pids(self) -> list[int]:
        return sorted(self.state.compute_pids)

    def persistence_mode(self) -> bool:
        return True

    def mig_mode(self) -> bool:
        return False

    def enforced_power_limit_w(self) -> float:
        return self.state.power_limit_w

    def power_limit_w(self) -> float:
        return self.state.power_limit_w

    def power_limit_range_w(self) -> tuple[float, float]:
        return self.state.power_range_w

    def default_power_limit_w(self) -> float:
        return self.state.default_power_limit_w

    def set_power_limit_w(self, watts: float) -> None:
        self._may(f"power {watts:g}")
        low, high = self.state.power_range_w
        if not low <= watts <= high:
            raise GpuInvalidValue(f"{watts:g} W is outside {low:g}-{high:g} W")
        step = self.state.step_w
        landed = round(watts / step) * step if step else watts
        self._land(f"power {landed:g}", power_limit_w=landed)

    def graphics_clock_range_mhz(self) -> tuple[int, int]:
        return self.state.clocks_mhz

    def lock_clocks_mhz(self, low: int, high: int) -> None:
        self._may(f"lock {low}-{high}")
        slowest, fastest = self.state.clocks_mhz
        if not slowest <= low <= high <= fastest:
            raise GpuInvalidValue(f"{low}-{high} MHz is outside {slowest}-{fastest} MHz")
        self._land(f"lock {low}-{high}", locked_clocks_mhz=(low, high))

    def reset_clocks(self) -> None:
        self._may("reset")
        self._land("reset", locked_clocks_mhz=None)


def _read(store: Path) -> list[GpuState]:
    return _Store.model_validate_json(store.read_text()).gpus


def _write(store: Path, states: list[GpuState]) -> None:
    """Whole or not at all (a process killed mid-write leaves the previous state)."""
    temporary = store.with_name(f".{store.name}.{os.getpid()}")
    temporary.write_text(_Store(gpus=states).model_dump_json(indent=1))
    os.replace(temporary, store)


class ScriptedNvmlError(Exception):
    """pynvml's error: its NVML return code in `value`."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML return code {value}")
        self.value = value


class ScriptedPynvml:
    """A stand-in for the pynvml module, for what the NVIDIA module does with NVML's answers
    (no GPU here): `count` GPUs that answer the calls in `answers` (name -> value, or an
    NVML_ERROR_* code as a `ScriptedNvmlError`) and refuse every other call as not supported.
    `init_error`: the code `nvmlInit` fails with."""

    NVMLError = ScriptedNvmlError
    NVML_SUCCESS = 0
    NVML_ERROR_INVALID_ARGUMENT = 2
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(
        self, count: int = 1, answers: dict[str, Any] | None = None, init_error: int | None = None
    ) -> None:
        self.count, self.answers, self.init_error = count, answers or {}, init_error
        self.inits = 0

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise ScriptedNvmlError(self.init_error)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < self.count:
            raise ScriptedNvmlError(self.NVML_ERROR_INVALID_ARGUMENT)
        return index

    def __getattr__(self, call: str) -> Callable[..., Any]:
        if not call.startswith("nvml"):
            raise AttributeError(call)
        answer = self.answers.get(call, ScriptedNvmlError(self.NVML_ERROR_NOT_SUPPORTED))

        def answered(*args: Any) -> Any:
            if isinstance(answer, ScriptedNvmlError):
                raise answer
            return answer

        return answered

    @staticmethod
    def field(nvml_return: int, value: int = 0) -> list[SimpleNamespace]:
        """What `nvmlDeviceGetFieldValues` answers for one field."""
        return [SimpleNamespace(nvmlReturn=nvml_return, value=SimpleNamespace(uiVal=value))]


def in_memory(n: int, store: Path | None = None, **state: Any) -> GpuControl:
    """The host's control over `n` in-memory GPUs (GPU-0, GPU-1, ...), as the host's code sees
    real ones through `host_control()`."""
    return GpuControl(InMemoryGpu.of(n, store, **state))
