"""The plan: what `expand` produces and every later step (manifest, results) keys on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llenergymeasure.config.search import SearchConfig
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.workdir import CONFIG_HASH_PATTERN, RUN_ID_PATTERN, run_dir_name


class PlannedRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_index: int = Field(ge=0, description="Position in execution order, 0-based.")
    run_id: str = Field(
        pattern=RUN_ID_PATTERN, description="Work-folder name: <NNNN>_<config-hash8>_c<cycle>."
    )
    config_hash: str = Field(
        pattern=CONFIG_HASH_PATTERN, description="Canonical SHA-256 of the config, hex."
    )
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

    @model_validator(mode="after")
    def _run_id_names_the_run(self) -> PlannedRun:
        # plan.json is read back from the study folder: its run ids name folders llem deletes.
        if self.run_id != run_dir_name(self.run_index, self.config_hash, self.cycle):
            raise ValueError(f"run_id {self.run_id!r} does not match its index, hash and cycle")
        return self


class SkippedCombination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    swept: dict[str, Any]
    reason: str


class SearchCellPlan(BaseModel):
    """One combination of a search study's own sweep: the configuration its search starts from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0)
    config_hash: str = Field(pattern=CONFIG_HASH_PATTERN)
    swept: dict[str, Any] = Field(default_factory=dict)
    config: ExperimentConfig


class SearchPlan(BaseModel):
    """A search study's plan.json: the search and the cells it runs in. Its runs are made as
    the sampler asks for them; the manifest records each (`TrialRecord`, `ConfirmRecord`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search: SearchConfig
    cells: list[SearchCellPlan] = Field(min_length=1)
