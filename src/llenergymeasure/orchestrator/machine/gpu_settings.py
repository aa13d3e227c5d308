"""A run's GPU settings (`gpu.power_limit_w`, `gpu.locked_clocks_mhz`) set on exactly its GPUs
before its container starts, read back, and put back after it, on every exit path.

The NVML calls sit behind `GpuControl` (`NvmlControl` is the real one; it needs a GPU and, for
setting, root). `GpuKeeper` owns the bookkeeping: it writes what it found into the host's
ledger before changing anything (`study.gpu_ledger`), so an llem killed with -9 is undone by the
next `llem run --resume` or `llem status` on that host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.errors import UserError
from llenergymeasure.study.gpu_ledger import GpuSettingRecord, Ledger

PERMISSION_HINT = (
    "setting a GPU's power limit or clocks needs root (as `nvidia-smi -pl` does): run llem as "
    "root, or leave gpu.power_limit_w and gpu.locked_clocks_mhz unset"
)
T = TypeVar("T")
CLAMP_TOLERANCE_W = 0.5  # NVML works in mW; a read-back within this is the value asked


class GpuSettingError(UserError):
    """A GPU setting that cannot be made here (no NVML, no permission, out of range)."""


class GpuControl(Protocol):
    """The NVML calls a GPU setting needs, by the host's NVML index."""

    def uuid(self, index: int) -> str: ...

    def power_limit_w(self, index: int) -> float: ...

    def power_limit_range_w(self, index: int) -> tuple[float, float]: ...

    def set_power_limit_w(self, index: int, watts: float) -> None: ...

    def clock_range_mhz(self, index: int) -> tuple[int, int]: ...

    def lock_clocks_mhz(self, index: int, low: int, high: int) -> None: ...

    def reset_clocks(self, index: int) -> None: ...


class NvmlControl:
    """The real GPUs through pynvml (nvidia-ml-py). GPU-only: exercised where a GPU is lent."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise GpuSettingError("nvidia-ml-py is not installed on the host") from None
        self._nv = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise GpuSettingError(
                f"gpu settings need NVML on the host, which answered: {error}",
                hint="run on a host with an NVIDIA GPU and driver",
            ) from None

    def _call(self, what: str, call: Callable[[Any], T]) -> T:
        """`call(handle-taking pynvml)`, its NVML errors as one message (a permission: how)."""
        try:
            return call(self._nv)
        except self._nv.NVMLError as error:
            if getattr(error, "value", None) == self._nv.NVML_ERROR_NO_PERMISSION:
                raise GpuSettingError(f"{what}: no permission", hint=PERMISSION_HINT) from None
            raise GpuSettingError(f"{what}: NVML error {error}") from None

    def _handle(self, index: int) -> Any:
        return self._nv.nvmlDeviceGetHandleByIndex(index)

    def uuid(self, index: int) -> str:
        value = self._call(
            f"reading GPU {index}'s UUID", lambda nv: nv.nvmlDeviceGetUUID(self._handle(index))
        )
        return value.decode() if isinstance(value, bytes) else str(value)

    def power_limit_w(self, index: int) -> float:
        milliwatts = self._call(
            f"reading GPU {index}'s power limit",
            lambda nv: nv.nvmlDeviceGetPowerManagementLimit(self._handle(index)),
        )
        return milliwatts / 1000.0

    def power_limit_range_w(self, index: int) -> tuple[float, float]:
        low, high = self._call(
            f"reading GPU {index}'s power limit range",
            lambda nv: nv.nvmlDeviceGetPowerManagementLimitConstraints(self._handle(index)),
        )
        return low / 1000.0, high / 1000.0

    def set_power_limit_w(self, index: int, watts: float) -> None:
        self._call(
            f"setting GPU {index}'s power limit to {watts:g} W",
            lambda nv: nv.nvmlDeviceSetPowerManagementLimit(
                self._handle(index), round(watts * 1000)
            ),
        )

    def clock_range_mhz(self, index: int) -> tuple[int, int]:
        def read(nv: Any) -> list[int]:
            handle = self._handle(index)
            memory = max(nv.nvmlDeviceGetSupportedMemoryClocks(handle))
            return list(nv.nvmlDeviceGetSupportedGraphicsClocks(handle, memory))

        clocks = self._call(f"reading GPU {index}'s supported clocks", read)
        return int(min(clocks)), int(max(clocks))

    def lock_clocks_mhz(self, index: int, low: int, high: int) -> None:
        self._call(
            f"locking GPU {index}'s clocks to {low}-{high} MHz",
            lambda nv: nv.nvmlDeviceSetGpuLockedClocks(self._handle(index), low, high),
        )

    def reset_clocks(self, index: int) -> None:
        self._call(
            f"unlocking GPU {index}'s clocks",
            lambda nv: nv.nvmlDeviceResetGpuLockedClocks(self._handle(index)),
        )


def check_settings(control: GpuControl, gpus: list[int], settings: list[GpuSettings]) -> None:
    """Plan time: every requested value inside each GPU's allowed range, and the permission to
    set it (probed by setting the current power limit again, a change of nothing)."""
    for index in gpus:
        low, high = control.power_limit_range_w(index)
        for wanted in {s.power_limit_w for s in settings if s.power_limit_w is not None}:
            if not low <= wanted <= high:
                raise GpuSettingError(
                    f"gpu.power_limit_w {wanted:g} W is outside GPU {index}'s range "
                    f"{low:g}-{high:g} W",
                    hint="choose limits inside the range `nvidia-smi -q -d POWER` shows",
                )
        clocks = [s.locked_clocks_mhz for s in settings if s.locked_clocks_mhz is not None]
        if clocks:
            slowest, fastest = control.clock_range_mhz(index)
            for pair in clocks:
                if pair[0] < slowest or pair[1] > fastest:
                    raise GpuSettingError(
                        f"gpu.locked_clocks_mhz {list(pair)} is outside GPU {index}'s "
                        f"supported clocks {slowest}-{fastest} MHz",
                        hint="see `nvidia-smi -q -d SUPPORTED_CLOCKS`",
                    )
        if any(s.power_limit_w is not None for s in settings):
            control.set_power_limit_w(index, control.power_limit_w(index))


class GpuKeeper:
    """Sets runs' GPUs and puts them back, through one host ledger."""

    def __init__(self, control: GpuControl, ledger: Ledger) -> None:
        self.control, self.ledger = control, ledger

    def apply(self, run_id: str, gpus: list[int], settings: GpuSettings) -> list[GpuSettingRecord]:
        """Record, then set; the records as the run ran (effective values read back). A failure
        half-way puts back what was set before it is raised."""
        if not settings.any or not gpus:
            return []
        records = [self._before(run_id, index, settings) for index in gpus]
        self.ledger.write([*self.ledger.outstanding(), *records])
        try:
            return [self._set(record, settings) for record in records]
        except GpuSettingError:
            self.restore(run_id)
            raise

    def _before(self, run_id: str, index: int, settings: GpuSettings) -> GpuSettingRecord:
        before = self.control.power_limit_w(index) if settings.power_limit_w is not None else None
        return GpuSettingRecord(
            run_id=run_id,
            index=index,
            uuid=self.control.uuid(index),
            power_limit_w_before=before,
            power_limit_w_requested=settings.power_limit_w,
            locked_clocks_mhz=settings.locked_clocks_mhz,
        )

    def _set(self, record: GpuSettingRecord, settings: GpuSettings) -> GpuSettingRecord:
        index, update = record.index, {}
        if settings.power_limit_w is not None:
            self.control.set_power_limit_w(index, settings.power_limit_w)
            effective = self.control.power_limit_w(index)
            clamped = abs(effective - settings.power_limit_w) > CLAMP_TOLERANCE_W
            update = {"power_limit_w_effective": effective, "clamped": clamped}
        if settings.locked_clocks_mhz is not None:
            self.control.lock_clocks_mhz(index, *settings.locked_clocks_mhz)
        return record.model_copy(update=update)

    def restore(self, run_id: str | None = None) -> list[GpuSettingRecord]:
        """Put back the GPUs of `run_id` (every outstanding one when None); those back leave
        the ledger (putting one back twice, after a crash between, changes nothing). Returns
        the records restored."""
        restored: list[GpuSettingRecord] = []
        kept: list[GpuSettingRecord] = []
        failures: list[str] = []
        for record in self.ledger.outstanding():
            if run_id is not None and record.run_id != run_id:
                kept.append(record)
                continue
            try:
                self._put_back(record)
            except GpuSettingError as error:
                failures.append(str(error))
                kept.append(record)
                continue
            restored.append(record.model_copy(update={"restored": True}))
        if restored:
            self.ledger.write(kept)
        if failures:
            raise GpuSettingError(
                "could not put every GPU back: " + "; ".join(failures),
                hint=f"the ledger {self.ledger.path} keeps them; `llem status` retries",
            )
        return restored

    def put_back(self, run_id: str, records: list[GpuSettingRecord]) -> list[GpuSettingRecord]:
        """The run's GPUs put back (`restore`); its `records` marked by which came back."""
        back = {r.index for r in self.restore(run_id)}
        return [r.model_copy(update={"restored": r.index in back}) for r in records]

    def _put_back(self, record: GpuSettingRecord) -> None:
        if self.control.uuid(record.index) != record.uuid:
            raise GpuSettingError(
                f"GPU {record.index} is now {self.control.uuid(record.index)}, not {record.uuid}"
            )
        if record.locked_clocks_mhz is not None:
            self.control.reset_clocks(record.index)
        if record.power_limit_w_before is not None:
            self.control.set_power_limit_w(record.index, record.power_limit_w_before)


def restore_leftovers(
    study_dir: Path,
    say: Callable[[str], None],
    control: GpuControl | None = None,
    host: str | None = None,
) -> list[GpuSettingRecord]:
    """What an earlier llem on this host changed and did not put back (killed with -9): put
    back now (through `control`, NVML by default). Nothing to do (the usual case) touches no
    GPU and needs no NVML. `host`: whose ledger (this host's by default)."""
    ledger = Ledger(study_dir, host)
    left = ledger.outstanding()
    if not left:
        return []
    runs = sorted({r.run_id for r in left})
    say(f"putting back GPU settings an earlier llem left on this host (runs {', '.join(runs)})")
    return GpuKeeper(control or NvmlControl(), ledger).restore()
