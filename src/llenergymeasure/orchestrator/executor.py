"""Where a planned run executes: the executor interface, and the local Docker executor.

The study runner owns the manifest, the schedule and the display; an executor only runs what it
is given in the slot it is given and hands back how each run ended. The contract between them is
the work folder (config.json in, progress/result/error out) and the container's exit, so another
executor (Slurm, Kubernetes) runs the same lifecycle elsewhere.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import docker

from llenergymeasure.orchestrator.container import ContainerExit, ContainerSpec, run_container
from llenergymeasure.orchestrator.engine import ResolvedImage
from llenergymeasure.orchestrator.run_spec import StudyContext
from llenergymeasure.orchestrator.slots import Slot
from llenergymeasure.orchestrator.stop import StopState
from llenergymeasure.study.models import PlannedRun


@dataclass(frozen=True)
class RunJob:
    """One planned run, ready to execute: its slot, work folder and container, and what the
    container was built from (for an executor that builds it again elsewhere: Slurm)."""

    run: PlannedRun
    slot: Slot
    workdir: Path
    spec: ContainerSpec
    timeout_s: float
    stall_timeout_s: float
    context: StudyContext | None = None
    image: ResolvedImage | None = None


@dataclass(frozen=True)
class Placement:
    """Where a run executed, when the executor chose it (a Slurm node and its allocation)."""

    node: str
    gpu_indices: list[int]
    gpu_uuids: list[str]
    cpuset: str | None


@dataclass(frozen=True)
class JobDone:
    job: RunJob
    exit: ContainerExit
    placement: Placement | None = None
    # Runs that shared its host while it ran, where the executor knows (Slurm: same node, times
    # overlapping); None: the runner's own record of what was in flight.
    concurrent: frozenset[str] | None = None
    detail: str | None = None  # the executor's word on how it ended (e.g. Slurm's job state)
    log_tail: str | None = None  # instead of container.log's (e.g. the Slurm job's output)
    requeue: str | None = None  # the executor lost the run (node failure): run it again, why
    crash: str | None = None  # ended without a container outcome (the node-side llem died)


class Executor(ABC):
    """Runs jobs in their slots; `wait` hands back the ones that ended.

    `schedules_itself`: the executor's scheduler (Slurm) decides where and when each job runs:
    the runner hands it every job at once and leaves slots, gaps and cool-down to it."""

    schedules_itself = False

    @abstractmethod
    def start(self, job: RunJob) -> None:
        """Begin `job`; returns at once."""

    @abstractmethod
    def wait(self, timeout_s: float) -> list[JobDone]:
        """The jobs that ended since the last call, waiting up to `timeout_s` for one."""

    @abstractmethod
    def cancel(self, run_id: str) -> None:
        """Stop a job: the first call asks its container to stop (SIGTERM, then SIGKILL after
        a grace), a second kills it at once."""

    @property
    @abstractmethod
    def in_flight(self) -> list[str]:
        """Run ids started and not yet handed back."""

    def reattach(self, runs: list[PlannedRun]) -> list[RunJob]:
        """Jobs of an earlier llem for these runs that the executor follows again (queued,
        running, or ended and not yet collected); they are in flight from now on."""
        return []

    def submitted(self) -> dict[str, str]:
        """run id -> the executor's job id, for jobs submitted since the last call."""
        return {}

    @property
    def all_submitted(self) -> bool:
        """Nothing handed to `start` still waits to be submitted."""
        return True


class LocalDockerExecutor(Executor):
    """Each job's container lifecycle (`container.run_container`) in a thread of its own, on
    this host's engine; the lifecycle enforces the job's timeout, stall limit and stop."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self._done: queue.Queue[JobDone] = queue.Queue()
        self._stops: dict[str, StopState] = {}

    def start(self, job: RunJob) -> None:
        stop = StopState()
        self._stops[job.run.run_id] = stop
        thread = threading.Thread(
            target=self._lifecycle, args=(job, stop), name=f"run-{job.run.run_id}", daemon=True
        )
        thread.start()

    def _lifecycle(self, job: RunJob, stop: StopState) -> None:
        try:
            exit_ = run_container(self.client, job.spec, job.timeout_s, job.stall_timeout_s, stop)
            self._done.put(JobDone(job, exit_))
        except Exception as error:  # a bug in the watch: the run ends, the study goes on
            now = time.time()
            exit_ = ContainerExit(None, None, False, None, now, now)
            self._done.put(JobDone(job, exit_, crash=f"llem's watch of it failed: {error!r}"))

    def wait(self, timeout_s: float) -> list[JobDone]:
        finished: list[JobDone] = []
        try:
            finished.append(self._done.get(timeout=timeout_s))
            while True:
                finished.append(self._done.get_nowait())
        except queue.Empty:
            pass
        for done in finished:
            self._stops.pop(done.job.run.run_id, None)
        return finished

    def cancel(self, run_id: str) -> None:
        stop = self._stops.get(run_id)
        if stop is not None:
            stop.request()

    @property
    def in_flight(self) -> list[str]:
        return list(self._stops)
