"""The plan: what `expand` produces and every later step (manifest, results) keys on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.contract.config import ExperimentConfig


class PlannedRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_index: int = Field(ge=0, description="Position in execution order, 0-based.")
    run_id: str = Field(description="Work-folder name: <NNNN>_<config-hash8>_c<cycle>.")
    config_hash: str = Field(description="Canonical SHA-256 of the config, hex.")
    config_index: int = Field(
        ge=0,
        description="Which configuration of the study (the same config listed twice "
        "gets two indices).",
    )
    cycle: int = Field(ge=0)
    swept: dict[str, Any] = Field(
        default_factory=dict, description="Dotted key -> value of each swept dimension."
    )
    config: ExperimentConfig


class SkippedCombination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    swept: dict[str, Any]
    reason: str
