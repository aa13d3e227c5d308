"""What a run's `gpu:` settings did to its GPUs, as the manifest records it per run (the host's
write-ahead ledger of changes not yet put back is `orchestrator/machine/gpu_ledger.py`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
        None,
        description="The lock set; put back by a reset to the driver's default (NVML cannot "
        "read a lock).",
    )
    restored: bool = False
