"""What the host writes to `config.json`: the experiment plus the context it runs in."""

from __future__ import annotations

from pydantic import Field

from llenergymeasure.contract.baseline import ReusedBaseline
from llenergymeasure.contract.config import ExperimentConfig, Strict
from llenergymeasure.contract.pruning import LatencyBound

REQUEST_SCHEMA_VERSION = 1


class RunContext(Strict):
    """Who and where: filled by the host before the container starts."""

    study_id: str = Field(description="Unique id of the study run (its folder name).")
    study_name: str
    run_id: str = Field(description="Work-folder name: <index>_<config-hash8>_c<cycle>.")
    run_index: int = Field(ge=0, description="Position of the run in the study's order.")
    config_hash: str = Field(description="Canonical SHA-256 of the ExperimentConfig.")
    cycle: int = Field(ge=0)
    image_ref: str | None = Field(None, description="Image as named in the study.")
    image_id: str | None = Field(None, description="Immutable image ID (sha256:...).")
    image_digest: str | None = Field(
        None, description="Repo digest (name@sha256:...); null for a locally built image."
    )
    gpu_indices: list[int] = Field(
        default_factory=list, description="Host GPU indices given to the container."
    )
    gpu_uuids: list[str] = Field(
        default_factory=list,
        description="Physical UUIDs of those GPUs, as the host's NVML named them (the container "
        "is granted them by UUID); empty where the host could not read NVML.",
    )
    cpuset: str | None = Field(
        None, description="Host CPUs the container was pinned to (Docker cpuset); null: all."
    )
    max_parallel: int = Field(1, ge=1, description="Runs the study executes at once.")
    offline: bool = Field(
        False,
        description="The container has no network: the model and data are local folders "
        "(llem sets it for every experiment; its hub repositories were fetched before).",
    )
    hub_commits: dict[str, str] = Field(
        default_factory=dict,
        description="Hub repository (`model:org/name@revision`, `dataset:...`) -> the commit of "
        "the snapshot the run was given.",
    )
    deadline_s: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds after the container starts at which its own entrypoint stops the "
        "run (error.json `DeadlineExceeded`, exit 137), even if the host that watches it is "
        "gone: the host's timeout plus a margin, so that normally the host's kill comes first. "
        "Null: no deadline.",
    )
    reused_baseline: ReusedBaseline | None = Field(
        None,
        description="An earlier run's idle baseline the host offers in place of this run's own "
        "(baseline.reuse_s); the container measures its own where it no longer holds.",
    )
    prune: list[LatencyBound] = Field(
        default_factory=list,
        description="A search trial's latency constraints: a one-stage serving run stops its "
        "load once one is settled against it (error.json `TrialPruned`). Empty: runs in full.",
    )


class Placement(Strict):
    """`placement.json`: where an executor that places runs itself (a cluster node) put this
    one; over the context's placement, which the submitting host could not know."""

    node: str
    gpu_indices: list[int]
    gpu_uuids: list[str]
    cpuset: str | None


class RunRequest(Strict):
    """The whole of `config.json`."""

    schema_version: int = REQUEST_SCHEMA_VERSION
    config: ExperimentConfig
    context: RunContext

    def with_context(self, **changes: object) -> RunRequest:
        """This request with its context changed (what the host adds once a run is placed)."""
        return self.model_copy(update={"context": self.context.model_copy(update=changes)})

    def placed(self, placement: Placement) -> RunRequest:
        """This request where the executor placed it."""
        context = self.context.model_copy(
            update={
                "gpu_indices": placement.gpu_indices,
                "gpu_uuids": placement.gpu_uuids,
                "cpuset": placement.cpuset,
            }
        )
        return self.model_copy(update={"context": context})
