"""A study scheduler on a fake executor, for the scheduler's own decisions: no engine, no
container; the executor ends jobs as each test says."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from helpers.factories import study_record
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import (
    Executor,
    HostNeeds,
    JobDone,
    RunJob,
    StudyAt,
)
from llenergymeasure.orchestrator.machine.container import ContainerExit, KillReason
from llenergymeasure.orchestrator.machine.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.gate import Gate
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger
from llenergymeasure.orchestrator.machine.gpu_settings import GpuControl
from llenergymeasure.orchestrator.machine.lifecycle import Machine
from llenergymeasure.orchestrator.machine.locks import HostLocks
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.orchestrator.machine.slots import SlotPool
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.orchestrator.planned import PlannedStudy
from llenergymeasure.orchestrator.schedule.preflight import Preflight, RunOptions
from llenergymeasure.orchestrator.schedule.scheduler import StudyScheduler
from llenergymeasure.orchestrator.schedule.study_folder import StudyFolder, pending_record
from llenergymeasure.orchestrator.schedule.study_run import run_source
from llenergymeasure.study import expand
from llenergymeasure.study.manifest import Manifest


def quiet_host(processes: dict[int, list[int]] | str = "no NVML here") -> HostProbes:
    """A host whose engine answers, with `processes` on its GPUs and cool GPUs."""
    return HostProbes(
        engine_answers=lambda engine: True,
        compute_processes=lambda gpus: processes,
        temperatures=lambda gpus: dict.fromkeys(gpus, 30.0),
    )


class InstantExecutor(Executor):
    """Ends every job at once (exit 0, no result: the run is recorded failed/NoResult), on
    the local executor's slots and gate, through the machine's per-run host lifecycle as every
    executor runs a job; `max_attempts` as given."""

    def __init__(self, at: StudyAt, max_attempts: int = 1) -> None:
        self.at = at
        self.attempts_limit = max_attempts
        self.started: list[RunJob] = []
        self.containers: list[str] = []  # runs whose container the machine started
        self._done: list[JobDone] = []

    @classmethod
    def preflight(cls, planned: PlannedStudy, say: Display) -> HostNeeds:
        return HostNeeds()

    @classmethod
    def open(cls, at: StudyAt) -> InstantExecutor:
        return cls(at)

    def slot_pool(self) -> SlotPool:
        execution = self.at.execution
        return SlotPool(execution.gpu_ids, execution.max_parallel, self.at.cpu_groups)

    def gate(self) -> Gate:
        return Gate(self.at.execution, self.at.probes, self.at.display)

    @property
    def max_attempts(self) -> int:
        return self.attempts_limit

    def start(self, job: RunJob) -> None:
        self.started.append(job)
        self.end(job, lambda: ContainerExit("c", 0, False, None, 0.0, 0.0))

    def end(self, job: RunJob, container: Callable[[], ContainerExit]) -> None:
        """The job through the machine's lifecycle around `container`, then ended."""

        def started() -> ContainerExit:
            self.containers.append(job.run.run_id)
            return container()

        exit_, host = self.at.machine.run(job.host, started)
        self._done.append(JobDone(job, exit_, host=host))

    def wait(self, timeout_s: float) -> list[JobDone]:
        done, self._done = self._done, []
        return done

    def cancel(self, run_id: str, *, force: bool = False) -> None:
        pass

    @property
    def in_flight(self) -> list[str]:
        return [job.job.run.run_id for job in self._done]


class HeldExecutor(InstantExecutor):
    """Holds every job (its container "runs", in a thread of its own as the local executor's)
    until it is cancelled; then it ends, killed for the interrupt."""

    def __init__(self, at: StudyAt, max_attempts: int = 1) -> None:
        super().__init__(at, max_attempts)
        self.held: dict[str, threading.Event] = {}
        self.running: set[str] = set()
        self.cancelled: list[str] = []

    def start(self, job: RunJob) -> None:
        self.started.append(job)
        run_id = job.run.run_id
        release = self.held[run_id] = threading.Event()
        self.running.add(run_id)

        def container() -> ContainerExit:
            release.wait()
            return ContainerExit("c", 137, False, KillReason.INTERRUPT, 0.0, 1.0)

        def lifecycle() -> None:
            self.end(job, container)
            self.running.discard(run_id)

        threading.Thread(target=lifecycle, daemon=True).start()

    def cancel(self, run_id: str, *, force: bool = False) -> None:
        self.cancelled.append(run_id)
        release = self.held.pop(run_id, None)
        if release is not None:
            release.set()

    def wait(self, timeout_s: float) -> list[JobDone]:
        if not self._done and self.running:
            threading.Event().wait(min(timeout_s, 0.01))
        return super().wait(timeout_s)

    @property
    def in_flight(self) -> list[str]:
        return sorted(self.running) + [done.job.run.run_id for done in self._done]


def stub_preflight(planned: PlannedStudy) -> Preflight:
    """A pre-flight that resolved nothing: no engine, one local image, no locks held."""
    return Preflight(
        planned=planned,
        design_hash="d" * 64,
        client=None,  # type: ignore[arg-type]  # the executor is the one that talks to engines
        locks=HostLocks([], "t"),
        images={"pytorch": ResolvedImage("img", "sha256:" + "0" * 64, None)},
        user=ContainerUser.for_invoker("10001:10001"),
        limits=ContainerLimits(None),
        cpu_groups=None,
    )


def make_scheduler(
    tmp_path: Path,
    execution: dict,
    n: int = 2,
    *,
    probes: HostProbes | None = None,
    executor: type[InstantExecutor] = InstantExecutor,
    max_attempts: int = 1,
    options: RunOptions | None = None,
    sweep: dict | None = None,
    gpu_control: GpuControl | None = None,
) -> tuple[StudyScheduler, InstantExecutor]:
    """A scheduler over `n` configurations of one GPU each (no hub model: nothing fetched), or
    over `sweep`; `gpu_control`: what sets the runs' `gpu:` settings (the host's ledger and
    locks in `tmp_path / "locks"`)."""
    study = StudyConfig.model_validate(
        {
            "name": "t",
            "defaults": {"model": "stub:m", "gpu_count": 1},
            "sweep": sweep or {"n_prompts": list(range(1, n + 1))},
            "execution": execution,
        }
    )
    plan = expand(study)
    pre = stub_preflight(PlannedStudy(tmp_path / "study.yaml", study, plan, tmp_path))
    record = study_record(
        study_id="t_1", study_name="t", runs={run.run_id: pending_record(run) for run in plan.runs}
    )
    (tmp_path / "study").mkdir()
    manifest = Manifest.create(tmp_path / "study", record)
    probes = probes or quiet_host()
    display = Display()
    options = options or RunOptions()
    # as `study_run.execute` hands it to the executor
    gated = study.execution.without_gaps() if options.no_gaps else study.execution
    machine = Machine(probes, control=gpu_control, ledger=GpuLedger(tmp_path / "locks"))
    at = StudyAt(tmp_path / "study", "t_1", gated, None, None, probes, display, machine)
    fake = executor(at, max_attempts)
    folder = StudyFolder(manifest, plan.runs)
    source = run_source(folder, pre, options, display)
    scheduler = StudyScheduler(pre, folder, fake, display, StopState(), options, source)
    return scheduler, fake
