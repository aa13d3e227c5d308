"""Where a planned run executes: the executor interface, and the table that finds one.

The scheduler owns the manifest, the schedule and the display; an executor only runs what it
is given in the slot it is given, through the machine's per-run host lifecycle
(`machine/lifecycle.py`: leftovers, foreign processes, GPU settings, the container, settings
put back) on the host where it runs it, and hands back how each run ended. The contract
between them is the work folder (config.json in, progress/result/error out), the container's
exit and the lifecycle's findings, so another executor (a cluster's scheduler) runs the same
lifecycle elsewhere. A new executor reads this seam and `machine/lifecycle.py`, not the
scheduler.

An executor is a complete strategy: its pre-flight (what the host must check and lock), its
slot pool and gate, its retry limit, how it stops a run, and how a study it left running is
collected later (`llem status`). The scheduler, pre-flight and CLI ask it, never its kind.
Executors are found by `execution.executor.kind` through the settings table
(`config/executors.py`), which names each implementation.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import docker

from llenergymeasure.config.executors import require_kind
from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.machine.container import ContainerExit, ContainerSpec
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.gate import Gate
from llenergymeasure.orchestrator.machine.lifecycle import HostFindings, HostRun, Machine
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.orchestrator.machine.run_spec import StudyContext
from llenergymeasure.orchestrator.machine.slots import Slot, SlotPool
from llenergymeasure.orchestrator.planned import PlannedStudy
from llenergymeasure.study.models import PlannedRun


@dataclass(frozen=True)
class RunJob:
    """One planned run, ready to execute: its slot, work folder and container, what the machine
    under it must do (`host`: its GPU settings and the study's policies, for the per-run host
    lifecycle), and what the container was built from (for an executor that builds it again
    elsewhere: on a cluster node)."""

    run: PlannedRun
    slot: Slot
    workdir: Path
    spec: ContainerSpec
    timeout_s: float
    stall_timeout_s: float
    host: HostRun
    context: StudyContext | None = None
    image: ResolvedImage | None = None


@dataclass(frozen=True)
class Placement:
    """Where a run executed, when the executor chose it (a cluster node and its allocation)."""

    node: str
    gpu_indices: list[int]
    gpu_uuids: list[str]
    cpuset: str | None


@dataclass(frozen=True)
class JobDone:
    job: RunJob
    exit: ContainerExit
    # What the machine did and saw around it (the per-run host lifecycle): foreign processes,
    # GPU settings set and put back, a refusal to start it; None where no lifecycle ran.
    host: HostFindings | None = None
    placement: Placement | None = None
    # Runs that shared its host while it ran, where the executor knows (a cluster: same node, times
    # overlapping); None: the scheduler's own record of what was in flight.
    concurrent: frozenset[str] | None = None
    detail: str | None = None  # the executor's word on how it ended (e.g. a cluster job's state)
    log_tail: str | None = None  # instead of container.log's (e.g. a cluster job's output)
    requeue: str | None = None  # the executor lost the run (node failure): run it again, why
    crash: str | None = None  # ended without a container outcome (the node-side llem died)


@dataclass(frozen=True)
class HostNeeds:
    """What an executor's pre-flight asks of this host: the GPUs and CPUs to lock (the GPUs
    also get the NVIDIA runtime checked and their UUIDs read), the CPU groups of its slots, and
    a line to show once the images are resolved."""

    gpus: list[int] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)
    cpu_groups: list[tuple[int, ...]] | None = None
    images_note: str | None = None


@dataclass(frozen=True)
class StudyAt:
    """What an executor is opened with: the study folder, the execution settings of this
    invocation, this host's engine client and CPU groups, the host probes, the display, and
    this machine as runs use it (the per-run host lifecycle)."""

    study_dir: Path
    study_id: str
    execution: ExecutionConfig
    client: docker.DockerClient | None
    cpu_groups: list[tuple[int, ...]] | None
    probes: HostProbes
    display: Display
    machine: Machine


class Executor(ABC):
    """Runs jobs in their slots; `wait` hands back the ones that ended."""

    # Its jobs go on when llem stops (a cluster's scheduler holds them): an error in llem does
    # not cancel them, and `llem run --detach` may leave them.
    jobs_outlive_llem: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def preflight(cls, planned: PlannedStudy, say: Display) -> HostNeeds:
        """Checks before anything is written (UserError when the study cannot run here)."""

    @classmethod
    @abstractmethod
    def open(cls, at: StudyAt) -> Executor:
        """The executor for one invocation on a study folder."""

    @abstractmethod
    def slot_pool(self) -> SlotPool:
        """Where the scheduler may place runs (unbounded where the executor places them)."""

    @abstractmethod
    def gate(self) -> Gate:
        """The gaps and cool-down the scheduler waits out before a run starts in a slot."""

    @property
    def max_attempts(self) -> int:
        """Starts of one run at most when the executor loses it (node failure)."""
        return 1

    def node_at_start(self) -> str | None:
        """The host a run starts on, when known as it starts (None: the executor places it)."""
        return None

    def engine_lost(self, done: JobDone) -> str | None:
        """Why the engine a run that did not complete (and was not interrupted) ran on stopped
        answering, if it did: the study stops then."""
        return None

    @abstractmethod
    def start(self, job: RunJob) -> None:
        """Begin `job`; returns at once."""

    @abstractmethod
    def wait(self, timeout_s: float) -> list[JobDone]:
        """The jobs that ended since the last call, waiting up to `timeout_s` for one."""

    @abstractmethod
    def cancel(self, run_id: str, *, force: bool = False) -> None:
        """Stop a job: its container is asked to stop (SIGTERM, then SIGKILL after a grace);
        `force`: killed at once."""

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

    @classmethod
    def collect_detached(cls, study_dir: Path, display: Display) -> int | None:
        """`llem status`: record the runs that ended while no llem followed the study; the
        number recorded, or None where the executor leaves nothing to collect."""
        return None

    @classmethod
    def node_run(cls, study_dir: Path, arguments: list[str]) -> int:
        """`llem node-run KIND STUDY_DIR ...`: a run's share of the lifecycle on the node the
        executor placed it on."""
        raise UserError(
            f"llem node-run: executor {cls.__name__} places no run on a node of its own",
            hint="`llem node-run` is what a cluster executor's job runs, not run by hand",
        )


def executor_class(kind: str) -> type[Executor]:
    """The executor that implements `kind` (`config/executors.py` names it); UserError for
    a kind there is none of."""
    module_name, _, class_name = require_kind(kind).implementation.partition(":")
    found = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(found, type) and issubclass(found, Executor)
    return found
