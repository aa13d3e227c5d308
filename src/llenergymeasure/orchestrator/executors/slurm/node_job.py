"""What the submitting llem leaves for the node (`<run>.job.json`), and what the node leaves for
it when the run is over (`<run>.exit.json`), both in `<study>/slurm/jobs/`, on shared storage.

A job file is data, not a container: the planned run, the study's context (the containers'
user, limits, the hub snapshots the pre-flight resolved) and the image by ID. The node builds
the container from it with the same code as a local study (`run_spec.build`): the user is never
root, the mounts are the run's own, the entrypoint is the image's (`llem-experiment`), and the
environment is the backend's allow-list read from the node's own environment. So nothing
secret is in any file, and a job file cannot describe another container.

Trust: the study folder must be the submitter's and writable by no one else
(`folder.trusted_study_dir`: llem creates it 0700), and so must `slurm/` and `slurm/jobs/`
(`untrusted.own_folder`, created 0700); every file in them is written 0600 and read back only if
it is a regular file of this user that no one else may read or write, below its cap
(`untrusted.read_bytes(owner=, private=True)`). So the only job files a node reads are ones the
submitter's llem wrote, and it builds the container from them itself: no one else can make a
node run anything, short of root or the submitter's own account.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import atomic_write_json
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.container import ContainerExit, ContainerSpec, KillReason
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.lifecycle import HostFindings
from llenergymeasure.orchestrator.machine.run_spec import StudyContext, build
from llenergymeasure.orchestrator.machine.slots import Slot
from llenergymeasure.study.folder import trusted_study_dir
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.untrusted import UntrustedFile, own_folder, read_bytes

JOBS_DIR = "jobs"
JOB_SUFFIX = ".job.json"
EXIT_SUFFIX = ".exit.json"
PRIVATE = 0o600
FILE_CAP = 16 << 20


def jobs_dir(slurm_folder: Path) -> Path:
    hint = "the study folder must be yours; start the study again"
    trusted_study_dir(slurm_folder.parent)
    return own_folder(own_folder(slurm_folder, hint=hint) / JOBS_DIR, hint=hint)


def read_private(path: Path) -> bytes:
    """A file of the Slurm folder: this user's, 0600, regular, capped. UntrustedFile else."""
    return read_bytes(path, FILE_CAP, owner=os.geteuid(), private=True)


class NodeJob(BaseModel):
    """A planned run as the node needs it to build its container (GPUs and CPUs: the node's
    allocation decides those), its limits, and what the node waits before it."""

    model_config = ConfigDict(extra="forbid")

    run: PlannedRun
    context: StudyContext
    image: ResolvedImage
    timeout_s: float
    stall_timeout_s: float
    execution: ExecutionConfig  # gaps, cool-down, container engine

    def container(
        self, workdir: Path, slot: Slot, **on_node: object
    ) -> tuple[RunRequest, ContainerSpec]:
        """The run's config.json and container, as the submitter's llem builds them, in
        `slot`; `on_node` replaces context fields (the node's GPU UUIDs, engine limits)."""
        context = dataclasses.replace(self.context, **on_node)  # type: ignore[arg-type]
        return build(self.run, context, self.image, workdir, slot, self.timeout_s)

    def write(self, folder: Path) -> None:
        atomic_write_json(folder / f"{self.run.run_id}{JOB_SUFFIX}", self, mode=PRIVATE)


def read_node_job(folder: Path, run_id: str) -> NodeJob:
    """The run's job file; UserError naming it when it is missing, not trusted or invalid."""
    path = folder / f"{run_id}{JOB_SUFFIX}"
    try:
        job = NodeJob.model_validate_json(read_private(path))
    except (OSError, UntrustedFile, ValidationError) as error:
        why = _one_line(error)
        raise UserError(f"{path}: not a job llem wrote for this user ({why})") from None
    if job.run.run_id != run_id:
        raise UserError(f"{path}: it describes run {job.run.run_id}, not {run_id}")
    if job.context.user.uid == 0:  # llem never builds one; a job that asks is not llem's
        raise UserError(f"{path}: its container would run as root; llem never runs one so")
    return job


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]


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
    problem: str | None = None
    host: HostFindings | None = None  # the node's per-run host lifecycle: what it did and saw

    @classmethod
    def of(
        cls,
        exit_: ContainerExit,
        *,
        node: str,
        gpu_indices: list[int],
        gpu_uuids: list[str],
        cpuset: str | None,
        host: HostFindings | None = None,
    ) -> NodeExit:
        return cls(
            node=node,
            gpu_indices=gpu_indices,
            gpu_uuids=gpu_uuids,
            cpuset=cpuset,
            host=host,
            **dataclasses.asdict(exit_),
        )

    def container_exit(self) -> ContainerExit:
        fields = self.model_dump(exclude={"node", "gpu_indices", "gpu_uuids", "cpuset", "host"})
        return ContainerExit(**fields)

    def write(self, folder: Path, run_id: str) -> None:
        atomic_write_json(exit_path(folder, run_id), self, mode=PRIVATE)


def exit_path(folder: Path, run_id: str) -> Path:
    return folder / f"{run_id}{EXIT_SUFFIX}"


def read_node_exit(folder: Path, run_id: str) -> NodeExit | None:
    """The node's word on how the run ended; None while there is none (or none to trust)."""
    try:
        return NodeExit.model_validate_json(read_private(exit_path(folder, run_id)))
    except (OSError, UntrustedFile, ValueError):
        return None
