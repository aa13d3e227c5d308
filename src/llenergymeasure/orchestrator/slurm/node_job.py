"""What the submitting llem leaves in a run's work folder for the node (`node_job.json`), and
what the node leaves for it when the run is over (`node_exit.json`). Both on shared storage."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.contract.workdir import atomic_write_json
from llenergymeasure.orchestrator.container import ContainerExit, ContainerSpec, KillReason

NODE_JOB_FILE = "node_job.json"
NODE_EXIT_FILE = "node_exit.json"


class NodeJob(BaseModel):
    """A planned run as the node needs it: its container (without GPUs and CPUs: the node's
    allocation decides those), its limits, and what the node waits before it."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    cycle: int
    gpu_count: int
    container: dict[str, Any]  # ContainerSpec's fields
    timeout_s: float
    stall_timeout_s: float
    execution: ExecutionConfig  # gaps, cool-down, container engine

    @classmethod
    def of(
        cls,
        spec: ContainerSpec,
        *,
        run_id: str,
        cycle: int,
        gpu_count: int,
        timeout_s: float,
        stall_timeout_s: float,
        execution: ExecutionConfig,
    ) -> NodeJob:
        fields = dataclasses.asdict(spec)
        fields["workdir"] = str(spec.workdir)
        return cls(
            run_id=run_id,
            cycle=cycle,
            gpu_count=gpu_count,
            container=fields,
            timeout_s=timeout_s,
            stall_timeout_s=stall_timeout_s,
            execution=execution,
        )

    def spec(self) -> ContainerSpec:
        fields = dict(self.container)
        fields["workdir"] = Path(fields["workdir"])
        return ContainerSpec(**fields)

    def write(self, workdir: Path) -> None:
        atomic_write_json(workdir / NODE_JOB_FILE, self)


def read_node_job(workdir: Path) -> NodeJob | None:
    try:
        return NodeJob.model_validate_json((workdir / NODE_JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class NodeExit(BaseModel):
    """How the container ended on the node (ContainerExit), and where it ran."""

    model_config = ConfigDict(extra="forbid")

    node: str
    gpu_indices: list[int]
    gpu_uuids: list[str]
    cpuset: str | None
    container_id: str | None
    exit_code: int | None
    oom_killed: bool
    killed_for: KillReason | None
    started_at: float  # epoch s, the node's clock
    finished_at: float
    engine_error: str | None = None
    forks_refused: int | None = None

    @classmethod
    def of(
        cls,
        exit_: ContainerExit,
        *,
        node: str,
        gpu_indices: list[int],
        gpu_uuids: list[str],
        cpuset: str | None,
    ) -> NodeExit:
        return cls(
            node=node,
            gpu_indices=gpu_indices,
            gpu_uuids=gpu_uuids,
            cpuset=cpuset,
            **dataclasses.asdict(exit_),
        )

    def container_exit(self) -> ContainerExit:
        fields = self.model_dump(exclude={"node", "gpu_indices", "gpu_uuids", "cpuset"})
        return ContainerExit(**fields)


def read_node_exit(workdir: Path) -> NodeExit | None:
    try:
        return NodeExit.model_validate_json((workdir / NODE_EXIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
