"""The study runner's decisions on GPU slots, which only a GPU host exercises end to end: a
foreign process on a slot's GPU (error / warn), and gaps that belong to each slot. The executor
here finishes every job at once with exit 0; the container side is not the subject."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.config.study import StudyConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import runner as runner_module
from llenergymeasure.orchestrator.container import ContainerExit, KillReason
from llenergymeasure.orchestrator.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.engine import ResolvedImage
from llenergymeasure.orchestrator.executor import Executor, JobDone, RunJob
from llenergymeasure.orchestrator.locks import HostLocks
from llenergymeasure.orchestrator.preflight import PlannedStudy, Preflight, RunOptions
from llenergymeasure.orchestrator.runner import StudyRunner
from llenergymeasure.orchestrator.stop import StopState
from llenergymeasure.orchestrator.study_folder import StudyFolder, pending_record
from llenergymeasure.study import expand
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import StudyRecord


class InstantExecutor(Executor):
    """Ends every job at once (exit 0, no result: the run is recorded failed/NoResult)."""

    def __init__(self) -> None:
        self.started: list[RunJob] = []
        self._done: list[JobDone] = []

    def start(self, job: RunJob) -> None:
        self.started.append(job)
        self._done.append(JobDone(job, ContainerExit("c", 0, False, None, 0.0, 0.0)))

    def wait(self, timeout_s: float) -> list[JobDone]:
        done, self._done = self._done, []
        return done

    def cancel(self, run_id: str) -> None:
        pass

    @property
    def in_flight(self) -> list[str]:
        return [job.job.run.run_id for job in self._done]


def _runner(tmp_path: Path, execution: dict, n: int = 2) -> tuple[StudyRunner, InstantExecutor]:
    study = StudyConfig.model_validate(
        {
            "name": "t",
            "defaults": {"model": "stub:m", "gpu_count": 1},  # no hub id: nothing fetched
            "sweep": {"n_prompts": list(range(1, n + 1))},
            "execution": execution,
        }
    )
    plan = expand(study)
    planned = PlannedStudy(tmp_path / "study.yaml", study, plan, tmp_path)
    pre = Preflight(
        planned=planned,
        design_hash="d" * 64,
        client=None,  # type: ignore[arg-type]  # the executor is the one that talks to engines
        locks=HostLocks([], "t"),
        images={"pytorch": ResolvedImage("img", "sha256:" + "0" * 64, None)},
        user=ContainerUser.for_invoker("10001:10001"),
        limits=ContainerLimits(None),
        cpu_groups=None,
    )
    record = StudyRecord(
        study_id="t_1",
        study_name="t",
        design_hash="d" * 64,
        created_at="2026-01-01T00:00:00Z",
        llem_version="0",
        runs={run.run_id: pending_record(run) for run in plan.runs},
    )
    (tmp_path / "study").mkdir()
    manifest = Manifest.create(tmp_path / "study", record)
    executor = InstantExecutor()
    folder = StudyFolder(manifest, plan.runs)
    return StudyRunner(pre, folder, executor, Display(), StopState(), RunOptions()), executor


@pytest.fixture(autouse=True)
def _quiet_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "engine_answers", lambda engine: True)


def test_a_foreign_process_fails_the_run_unstarted_under_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "compute_processes", lambda gpus: {0: [4242]})
    runner, executor = _runner(tmp_path, {"foreign_gpu_processes": "error", "gpu_ids": [0]})
    runner._finish = lambda total: 1  # type: ignore[method-assign]  # no results tables here
    assert runner.run() == 1
    assert executor.started == []
    for record in runner.manifest.record.runs.values():
        assert (record.status, record.error_type) == ("failed", "ForeignGpuProcesses")
        assert record.foreign_gpu_processes == [4242] and "4242" in (record.error or "")


def test_a_foreign_process_is_recorded_under_warn_and_the_run_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "compute_processes", lambda gpus: {0: [4242]})
    runner, executor = _runner(tmp_path, {"gpu_ids": [0], "gap_between_experiments_s": 0})
    runner._finish = lambda total: 1  # type: ignore[method-assign]
    runner.run()
    assert len(executor.started) == 2
    assert all(r.foreign_gpu_processes == [4242] for r in runner.manifest.record.runs.values())
    assert all(job.spec.gpu_devices == ["0"] for job in executor.started)  # no UUID known


def test_gaps_belong_to_each_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "compute_processes", lambda gpus: "no NVML here")
    execution = {"gpu_ids": [0, 1], "max_parallel": 2, "gap_between_experiments_s": 600}
    runner, executor = _runner(tmp_path, execution, n=3)
    runner._finish = lambda total: 0  # type: ignore[method-assign]
    stop = runner.stop

    def stop_when_waiting(seconds: float) -> bool:  # the third run waits out a gap: stop there
        if runner.waiting is None:
            return False
        stop.request()
        return True

    stop.sleep = stop_when_waiting  # type: ignore[method-assign]
    runner.run()
    # runs 0 and 1 started at once on GPUs 0 and 1 (no gap: nothing ran on them before); run 2
    # had to wait the 600 s gap of the GPU run 0 gave back
    assert [job.slot.gpus for job in executor.started] == [(0,), (1,)]
    assert runner.waiting is not None


class HeldExecutor(InstantExecutor):
    """Holds every job until it is cancelled; then it ends, killed for the interrupt."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, RunJob] = {}
        self.cancelled: list[str] = []

    def start(self, job: RunJob) -> None:
        self.started.append(job)
        self.held[job.run.run_id] = job

    def cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)
        job = self.held.pop(run_id)
        exit_ = ContainerExit("c", 137, False, KillReason.INTERRUPT, 0.0, 1.0)
        self._done.append(JobDone(job, exit_))

    @property
    def in_flight(self) -> list[str]:
        return list(self.held) + [done.job.run.run_id for done in self._done]


def test_an_unexpected_error_stops_and_records_every_run_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "compute_processes", lambda gpus: "no NVML here")
    runner, _ = _runner(tmp_path, {"gpu_ids": [0, 1], "max_parallel": 2})
    executor = HeldExecutor()
    runner.executor = executor
    ticks = 0

    def display_fails(force: bool = False) -> None:  # e.g. ENOSPC, two ticks into the study
        nonlocal ticks
        ticks += 1
        if ticks == 2:
            raise OSError(28, "No space left on device", "manifest.jsonl")

    runner.display.refresh = display_fails  # type: ignore[method-assign]
    with pytest.raises(UserError, match="No space left on device") as raised:
        runner.run()
    assert "--resume" in (raised.value.hint or "")
    assert sorted(executor.cancelled) == sorted(job.run.run_id for job in executor.started)
    assert len(executor.started) == 2 and executor.in_flight == []
    for record in runner.manifest.record.runs.values():
        assert (record.status, record.error_type) == ("interrupted", "LlemStopped")
