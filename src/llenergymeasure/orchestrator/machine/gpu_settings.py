"""A run's GPU settings (`gpu.power_limit_w`, `gpu.locked_clocks_mhz`) set on exactly its GPUs
before its container starts, read back, and put back after it, on every exit path.

The GPUs are `llenergymeasure.device`'s (NVML behind one interface), by host index through
`GpuControl` (`host_control()`: this host's; setting needs root). `GpuKeeper` owns the
bookkeeping through the host-wide ledger (`gpu_ledger.py`): what it found goes into the ledger
before anything changes, and a change an earlier llem left (killed with -9) is put back before
anything is read. Every call is made under the GPUs' host locks, which the caller holds
(`lifecycle.py`, `llem gpus restore`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.device import GPU, GpuError, GpuNoPermission, host_gpus
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger, LedgerEntry, changer
from llenergymeasure.orchestrator.machine.locks import HostLocks
from llenergymeasure.study.gpu_records import GpuSettingRecord

PERMISSION_HINT = (
    "setting a GPU's power limit or clocks needs root (as `nvidia-smi -pl` does): run llem as "
    "root, or leave gpu.power_limit_w and gpu.locked_clocks_mhz unset"
)
T = TypeVar("T")
CLAMP_TOLERANCE_W = 0.5  # NVML works in mW; a read-back within this is the value asked
# A limit this close to the driver's default is the default (NVML rounds to the mW).
DEFAULT_TOLERANCE_W = 0.5


class GpuSettingError(UserError):
    """A GPU setting that cannot be made here (no NVML, no permission, out of range)."""


class GpuControl:
    """The host's GPUs by their host index, as a setting needs them: each call one `GPU`
    method (`llenergymeasure.device`: any vendor's), its failure one message naming what was
    asked (`GpuSettingError`; a refused permission says how to get it)."""

    def __init__(self, gpus: Sequence[GPU]) -> None:
        self._gpus = {gpu.index: gpu for gpu in gpus}

    def gpu(self, index: int) -> GPU:
        found = self._gpus.get(index)
        if found is None:
            raise GpuSettingError(f"this host has no GPU {index} (it has {sorted(self._gpus)})")
        return found

    def _call(self, what: str, index: int, call: Callable[[GPU], T]) -> T:
        try:
            return call(self.gpu(index))
        except GpuNoPermission:
            raise GpuSettingError(f"{what}: no permission", hint=PERMISSION_HINT) from None
        except GpuError as error:
            raise GpuSettingError(f"{what}: {error}") from None

    def uuid(self, index: int) -> str:
        return self._call(f"reading GPU {index}'s UUID", index, lambda gpu: gpu.uuid())

    def power_limit_w(self, index: int) -> float:
        return self._call(
            f"reading GPU {index}'s power limit", index, lambda gpu: gpu.power_limit_w()
        )

    def power_limit_range_w(self, index: int) -> tuple[float, float]:
        return self._call(
            f"reading GPU {index}'s power limit range",
            index,
            lambda gpu: gpu.power_limit_range_w(),
        )

    def default_power_limit_w(self, index: int) -> float:
        return self._call(
            f"reading GPU {index}'s default power limit",
            index,
            lambda gpu: gpu.default_power_limit_w(),
        )

    def set_power_limit_w(self, index: int, watts: float) -> None:
        self._call(
            f"setting GPU {index}'s power limit to {watts:g} W",
            index,
            lambda gpu: gpu.set_power_limit_w(watts),
        )

    def clock_range_mhz(self, index: int) -> tuple[int, int]:
        return self._call(
            f"reading GPU {index}'s supported clocks",
            index,
            lambda gpu: gpu.graphics_clock_range_mhz(),
        )

    def lock_clocks_mhz(self, index: int, low: int, high: int) -> None:
        self._call(
            f"locking GPU {index}'s clocks to {low}-{high} MHz",
            index,
            lambda gpu: gpu.lock_clocks_mhz(low, high),
        )

    def reset_clocks(self, index: int) -> None:
        self._call(f"unlocking GPU {index}'s clocks", index, lambda gpu: gpu.reset_clocks())


def host_control() -> GpuControl:
    """This host's GPUs (`device.host_gpus`: NVML on NVIDIA hosts). GpuSettingError naming
    why where they cannot be read. GPU-only: exercised where a GPU is lent."""
    found = host_gpus()
    if isinstance(found, str):
        raise GpuSettingError(
            f"GPU settings need the GPUs' library on the host, which answered: {found}",
            hint="run on a host with an NVIDIA GPU and driver",
        )
    return GpuControl(found)


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
    """Sets runs' GPUs and puts them back, through the host-wide ledger; the caller holds the
    GPUs' host locks."""

    def __init__(self, control: GpuControl, ledger: GpuLedger) -> None:
        self.control, self.ledger = control, ledger

    def leftovers(self, gpus: list[int]) -> list[LedgerEntry]:
        """Changes an earlier llem left on `gpus` and did not put back."""
        found = [self.ledger.get(self.control.uuid(index)) for index in gpus]
        return [entry for entry in found if entry is not None]

    def put_back_leftovers(self, gpus: list[int]) -> list[LedgerEntry]:
        """Each leftover on `gpus` put back and forgotten; the entries put back. A GPU that
        cannot be put back keeps its entry and raises, naming every failure."""
        restored, failures = [], []
        for entry in self.leftovers(gpus):
            try:
                self.restore(entry)
            except GpuSettingError as error:
                failures.append(str(error))
                continue
            restored.append(entry)
        if failures:
            raise GpuSettingError(
                "could not put back what an earlier llem left: " + "; ".join(failures),
                hint="`llem gpus show` lists what the ledger keeps; `llem gpus restore` retries",
            )
        return restored

    def off_default(self, gpus: list[int]) -> list[str]:
        """GPUs whose power limit is not the driver's default with no ledger entry explaining
        it (someone else set it): one line each. Call after `put_back_leftovers`."""
        lines = []
        for index in gpus:
            limit = self.control.power_limit_w(index)
            default = self.control.default_power_limit_w(index)
            if abs(limit - default) > DEFAULT_TOLERANCE_W:
                lines.append(
                    f"GPU {index}'s power limit is {limit:g} W, not its default {default:g} W, "
                    "and no llem changed it"
                )
        return lines

    def apply(
        self, study_id: str, run_id: str, gpus: list[int], settings: GpuSettings
    ) -> list[GpuSettingRecord]:
        """Record each GPU's state in the ledger, then set it; the records as the run ran
        (effective values read back). A failure half-way puts back what was set before it is
        raised."""
        if not settings.any or not gpus:
            return []
        recorded: list[GpuSettingRecord] = []
        try:
            for index in gpus:
                record = self._before(run_id, index, settings)
                self.ledger.record(_entry(record, study_id))
                recorded.append(record)
            return [self._set(record, settings) for record in recorded]
        except GpuSettingError:
            self.put_back(recorded)
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

    def put_back(self, records: list[GpuSettingRecord]) -> list[GpuSettingRecord]:
        """A run's GPUs as they were before it, each under its ledger entry (only the run's
        own: an entry of another run is not this run's to put back); `records` marked by which
        came back. Raises after trying every GPU when one could not be put back (its entry
        stays, so the next run on it, or `llem gpus restore`, puts it back)."""
        back: set[int] = set()
        failures = []
        for record in records:
            entry = self.ledger.get(record.uuid) if record.uuid else None
            if entry is None or entry.by.run_id != record.run_id:
                continue
            try:
                self.restore(entry)
            except GpuSettingError as error:
                failures.append(str(error))
                continue
            back.add(record.index)
        marked = [r.model_copy(update={"restored": r.index in back}) for r in records]
        if failures:
            raise GpuSettingError(
                "could not put every GPU back: " + "; ".join(failures),
                hint="the host's ledger keeps them (`llem gpus show`); the next run on those "
                "GPUs or `llem gpus restore` puts them back",
            )
        return marked

    def restore(self, entry: LedgerEntry) -> None:
        """One GPU as it was before `entry`'s change, then the entry forgotten (putting one
        back twice, after a crash between, changes nothing)."""
        found = self.control.uuid(entry.index)
        if found != entry.uuid:
            raise GpuSettingError(f"GPU {entry.index} is now {found}, not {entry.uuid}")
        if entry.clocks_locked is not None:
            self.control.reset_clocks(entry.index)
        if entry.power_limit_w_before is not None:
            self.control.set_power_limit_w(entry.index, entry.power_limit_w_before)
        self.ledger.forget(entry.uuid)


def _entry(record: GpuSettingRecord, study_id: str) -> LedgerEntry:
    assert record.uuid is not None
    return LedgerEntry(
        uuid=record.uuid,
        index=record.index,
        power_limit_w_before=record.power_limit_w_before,
        power_limit_w_set=record.power_limit_w_requested,
        clocks_locked=record.locked_clocks_mhz,
        by=changer(study_id, record.run_id),
    )


@dataclass(frozen=True)
class Restored:
    """What `restore_host` did: the entries put back, and the GPUs left as they are (why)."""

    restored: list[LedgerEntry]
    left: dict[str, str]  # GPU UUID -> why it was not put back


def restore_host(ledger: GpuLedger, control: GpuControl, uuids: set[str] | None = None) -> Restored:
    """Every outstanding change on this host (or those of `uuids`) put back, each under its
    GPU's host lock, taken without waiting: a GPU whose lock another llem holds is that llem's
    to put back and is left (named). `llem gpus restore`."""
    restored: list[LedgerEntry] = []
    left: dict[str, str] = {}
    for entry in ledger.entries():
        if uuids is not None and entry.uuid not in uuids:
            continue
        try:
            with HostLocks([entry.index], "llem gpus restore", ledger.lock_folder):
                keeper = GpuKeeper(control, ledger)
                current = ledger.get(entry.uuid)  # under the lock: its run may have ended
                if current is not None:
                    keeper.restore(current)
                    restored.append(current)
        except UserError as error:  # held by a running llem, or NVML refused
            left[entry.uuid] = error.message
    return Restored(restored, left)
