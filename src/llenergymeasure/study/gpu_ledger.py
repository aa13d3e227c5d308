"""The write-ahead record of GPU settings llem changed and has not yet put back, one file per
host in the study folder (`gpu-settings/<host>.json`, 0600 in a folder of this user's).

Before llem changes a GPU it records what it found there; once restored, the entry goes. An
llem killed with -9 leaves its entries, and the next `llem run --resume` or `llem status` on that
host (a Slurm node: its next run there) puts the GPUs back from them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.contract.workdir import atomic_write_json
from llenergymeasure.study.untrusted import UntrustedFile, own_folder, read_bytes

LEDGER_DIR = "gpu-settings"
LEDGER_CAP = 1 << 20


class GpuSettingRecord(BaseModel):
    """One GPU as a run set it: what was there before, what was asked, what the driver took."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    index: int = Field(description="The host's (node's) NVML index.")
    uuid: str | None = None
    power_limit_w_before: float | None = None
    power_limit_w_requested: float | None = None
    power_limit_w_effective: float | None = Field(None, description="Read back after setting it.")
    clamped: bool = Field(False, description="The driver set another limit than asked.")
    locked_clocks_mhz: tuple[int, int] | None = Field(
        None, description="The lock set; restored by resetting (NVML cannot read a lock)."
    )
    restored: bool = False


class Ledger:
    """This host's outstanding GPU changes in one study."""

    def __init__(self, study_dir: Path, host: str | None = None) -> None:
        self.folder = Path(study_dir) / LEDGER_DIR
        self.path = self.folder / f"{host or os.uname().nodename}.json"

    def outstanding(self) -> list[GpuSettingRecord]:
        try:
            data = read_bytes(self.path, LEDGER_CAP, owner=os.geteuid(), private=True)
        except FileNotFoundError:
            return []
        except (OSError, UntrustedFile) as error:
            raise OSError(f"{self.path}: not a GPU-settings record of llem's ({error})") from None
        return [GpuSettingRecord.model_validate(item) for item in _list(data)]

    def write(self, records: list[GpuSettingRecord]) -> None:
        """Durable before the GPU is touched (fsync'd rename)."""
        if not records:
            self.path.unlink(missing_ok=True)
            return
        own_folder(self.folder, hint="the study folder must be yours to change its GPUs")
        atomic_write_json(self.path, [r.model_dump(mode="json") for r in records], mode=0o600)


def _list(data: bytes) -> list[object]:
    parsed = json.loads(data)
    if not isinstance(parsed, list):
        raise OSError("a GPU-settings record must be a list")
    return parsed
