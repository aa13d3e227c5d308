"""The host-wide write-ahead ledger of GPU settings llem changed and has not put back.

One file per GPU, named by its physical UUID, in `<lock folder>/gpu-settings/` (beside the
host locks: `locks.lock_dir()`, `/run/llem/locks` for root): `GPU-<uuid>.json`, 0600 in a
folder only its owner may write. A GPU has at most one entry, whatever study, run or process
changed it:

- before llem changes a GPU it records what it found there (the power limit; that it locks the
  clocks) and who changes it (study, run, pid, host); the record is durable before the GPU is
  touched;
- once the GPU is put back, the entry goes;
- an entry found when a run starts on that GPU is a leftover (its llem was killed with -9, or
  the put-back failed): the run puts it back first, before it reads any "before" of its own,
  so a "before" is always the GPU's state as it was before llem touched it.

Why host-wide, not per study: a GPU belongs to the host, not to a study. With one ledger per
study folder, a study B started after study A was killed recorded A's 150 W as its "before" and
put it back at the end, and `llem status A` meanwhile put A's "before" back under B's
measurement. Entries are read and changed only under the GPU's host lock (`locks.HostLocks`),
which the run holding the GPU owns; `llem gpus restore` takes the lock before it restores.

`/run` is emptied at boot, as the driver forgets power limits and clock locks at a reboot or a
driver reload: the ledger and the GPU forget together.

A file that is not a regular file of this user, is writable by others, is too big or does not
parse is one message naming it (`LedgerUnreadable`), never a guess.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.contract.workdir import atomic_write_json
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.locks import ENV_LOCK_DIR, lock_dir
from llenergymeasure.study.untrusted import UntrustedFile, own_folder, read_bytes

LEDGER_DIR = "gpu-settings"
ENTRY_CAP = 64 * 1024
# NVML's UUIDs ("GPU-8f6f...", "MIG-..."): a name that cannot leave the ledger's folder.
_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class LedgerUnreadable(UserError):
    """An entry llem cannot trust or parse: named, with what to do."""


class Changer(BaseModel):
    """Who changed the GPU: the study and run, and the llem process on which host."""

    model_config = ConfigDict(extra="forbid")

    study_id: str
    run_id: str
    pid: int
    host: str
    since: str = Field(description="UTC, ISO 8601: when the change was recorded.")


class LedgerEntry(BaseModel):
    """One GPU llem changed: what it was before llem's change, and what llem changed."""

    model_config = ConfigDict(extra="forbid")

    uuid: str
    index: int = Field(description="The host's NVML index when the change was made.")
    power_limit_w_before: float | None = Field(
        None, description="The power limit llem found, W; null: llem did not change the limit."
    )
    power_limit_w_set: float | None = Field(None, description="The limit llem set, W.")
    clocks_locked: tuple[int, int] | None = Field(
        None,
        description="The clock lock llem set, MHz; put back by a reset to the driver's default "
        "(NVML cannot read a lock, so one set before llem's is not known and not restored).",
    )
    by: Changer

    def describe(self) -> str:
        """The change in words: what llem set on which GPU, for which run."""
        parts = []
        if self.power_limit_w_set is not None:
            parts.append(f"power limit {self.power_limit_w_set:g} W (was {self.before_text()})")
        if self.clocks_locked is not None:
            parts.append(f"clocks locked {self.clocks_locked[0]}-{self.clocks_locked[1]} MHz")
        what = ", ".join(parts) or "nothing"
        by = self.by
        return (
            f"GPU {self.index} ({self.uuid}): {what}, by run {by.run_id} of study {by.study_id} "
            f"(pid {by.pid} on {by.host}, {by.since})"
        )

    def before_text(self) -> str:
        before = self.power_limit_w_before
        return f"{before:g} W" if before is not None else "not recorded"


class GpuLedger:
    """This host's outstanding GPU changes, one entry per GPU UUID, in the folder of the host
    locks (`lock_folder`: `locks.lock_dir()` by default) that guard them."""

    def __init__(self, lock_folder: Path | None = None) -> None:
        self.lock_folder = lock_folder if lock_folder is not None else lock_dir()
        self.folder = self.lock_folder / LEDGER_DIR

    def path_of(self, uuid: str) -> Path:
        """The entry's file, in the ledger's folder checked to be this user's alone."""
        if not _UUID.fullmatch(uuid):
            raise ValueError(f"not a GPU UUID: {uuid!r}")
        return own_folder(self.folder, hint=_FOLDER_HINT) / f"{uuid}.json"

    def get(self, uuid: str) -> LedgerEntry | None:
        """The GPU's outstanding change, if any (no folder yet: none)."""
        path = self.path_of(uuid)
        try:
            data = read_bytes(path, ENTRY_CAP, owner=os.geteuid(), private=True)
        except FileNotFoundError:
            return None
        except (OSError, UntrustedFile) as error:
            raise LedgerUnreadable(
                f"{path}: not a GPU-settings record llem can trust ({error})",
                hint=_REPAIR_HINT,
            ) from None
        try:
            entry = LedgerEntry.model_validate_json(data)
        except ValidationError as error:
            why = " ".join(str(error).split())[:200]
            raise LedgerUnreadable(
                f"{path}: not a GPU-settings record of llem's ({why})", hint=_REPAIR_HINT
            ) from None
        if entry.uuid != uuid:
            raise LedgerUnreadable(
                f"{path}: it records GPU {entry.uuid}, not {uuid}", hint=_REPAIR_HINT
            )
        return entry

    def entries(self) -> list[LedgerEntry]:
        """Every outstanding change on this host (for `llem gpus`), by GPU index."""
        folder = own_folder(self.folder, hint=_FOLDER_HINT)
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
        found = [self.get(name.removesuffix(".json")) for name in names]
        return sorted((e for e in found if e is not None), key=lambda e: e.index)

    def record(self, entry: LedgerEntry) -> None:
        """Durable (fsync'd rename) before the GPU is touched."""
        atomic_write_json(self.path_of(entry.uuid), entry, mode=0o600)

    def forget(self, uuid: str) -> None:
        """The GPU is back as it was: its entry goes."""
        self.path_of(uuid).unlink(missing_ok=True)


def changer(study_id: str, run_id: str) -> Changer:
    return Changer(
        study_id=study_id,
        run_id=run_id,
        pid=os.getpid(),
        host=os.uname().nodename,
        since=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


_REPAIR_HINT = (
    "check the GPU by hand (`nvidia-smi -q -d POWER`), put it back if needed (`nvidia-smi -pl`, "
    "`nvidia-smi -rgc`), then remove that file"
)
_FOLDER_HINT = f"set {ENV_LOCK_DIR} to a folder only you may write"
