"""The scheduler's decisions on GPU slots, which only a GPU host exercises end to end: a
foreign process on a slot's GPU (error / warn), gaps that belong to each slot, --no-gaps, and
the requeue rule. The executor finishes jobs as the test says; the container side is not the
subject."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers.scheduler import HeldExecutor, make_scheduler, quiet_host
from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.executors.base import JobDone, RunJob
from llenergymeasure.orchestrator.machine.container import ContainerExit, ContainerSpec
from llenergymeasure.orchestrator.machine.lifecycle import HostRun
from llenergymeasure.orchestrator.machine.slots import Slot
from llenergymeasure.orchestrator.schedule.preflight import RunOptions
from llenergymeasure.orchestrator.schedule.scheduler import Flight


def _no_tables(scheduler) -> None:
    scheduler.collector.finish_study = lambda learned=False: []  # no results tables here


def test_a_foreign_process_fails_the_run_unstarted_under_error(tmp_path: Path) -> None:
    scheduler, executor = make_scheduler(
        tmp_path,
        {"foreign_gpu_processes": "error", "gpu_ids": [0]},
        probes=quiet_host({0: [4242]}),
    )
    _no_tables(scheduler)
    assert scheduler.run() == 0  # finish_study said nothing failed: the records decide below
    assert executor.containers == []  # the machine refused them: no container started
    for record in scheduler.manifest.record.runs.values():
        assert (record.status, record.error_type) == ("failed", "ForeignGpuProcesses")
        assert record.foreign_gpu_processes == [4242] and "4242" in (record.error or "")


def test_a_foreign_process_is_recorded_under_warn_and_the_run_starts(tmp_path: Path) -> None:
    scheduler, executor = make_scheduler(
        tmp_path, {"gpu_ids": [0], "gap_between_experiments_s": 0}, probes=quiet_host({0: [4242]})
    )
    _no_tables(scheduler)
    scheduler.run()
    assert len(executor.started) == 2
    records = scheduler.manifest.record.runs.values()
    assert all(r.foreign_gpu_processes == [4242] for r in records)
    assert all(job.spec.gpu_devices == ["0"] for job in executor.started)  # no UUID known


def _stop_at_first_gap(scheduler) -> None:
    stop = scheduler.stop

    def stop_when_waiting(seconds: float) -> bool:
        if scheduler.gate.waiting is None:
            return False
        stop.request()
        return True

    stop.sleep = stop_when_waiting


def test_gaps_belong_to_each_slot(tmp_path: Path) -> None:
    execution = {"gpu_ids": [0, 1], "max_parallel": 2, "gap_between_experiments_s": 600}
    scheduler, executor = make_scheduler(tmp_path, execution, n=3)
    _no_tables(scheduler)
    _stop_at_first_gap(scheduler)
    scheduler.run()
    # runs 0 and 1 started at once on GPUs 0 and 1 (no gap: nothing ran on them before); run 2
    # had to wait the 600 s gap of the GPU run 0 gave back
    assert [job.slot.gpus for job in executor.started] == [(0,), (1,)]
    assert scheduler.gate.waiting is not None


def test_no_gaps_runs_back_to_back_and_says_so_in_each_record(tmp_path: Path) -> None:
    execution = {"gpu_ids": [0], "gap_between_experiments_s": 600, "cooldown_to_temp_c": 20}
    hot = quiet_host()
    hot = type(hot)(hot.engine_answers, hot.compute_processes, lambda gpus: {0: 90.0})
    scheduler, executor = make_scheduler(
        tmp_path, execution, n=3, options=RunOptions(no_gaps=True), probes=hot
    )
    _no_tables(scheduler)
    _stop_at_first_gap(scheduler)
    scheduler.run()
    assert len(executor.started) == 3
    assert all(r.no_gaps for r in scheduler.manifest.record.runs.values())


def test_an_unexpected_error_stops_and_records_every_run_in_flight(tmp_path: Path) -> None:
    scheduler, executor = make_scheduler(
        tmp_path, {"gpu_ids": [0, 1], "max_parallel": 2}, executor=HeldExecutor
    )
    ticks = 0

    def display_fails(force: bool = False) -> None:  # e.g. ENOSPC, two ticks into the study
        nonlocal ticks
        ticks += 1
        if ticks == 2:
            raise OSError(28, "No space left on device", "manifest.jsonl")

    scheduler.display.refresh = display_fails  # type: ignore[method-assign]
    with pytest.raises(UserError, match="No space left on device") as raised:
        scheduler.run()
    assert "--resume" in (raised.value.hint or "")
    assert isinstance(executor, HeldExecutor)
    assert sorted(executor.cancelled) == sorted(job.run.run_id for job in executor.started)
    assert len(executor.started) == 2 and executor.in_flight == []
    for record in scheduler.manifest.record.runs.values():
        assert (record.status, record.error_type) == ("interrupted", "LlemStopped")


@pytest.mark.parametrize("attempts, requeued", [(1, True), (3, False)])
def test_a_lost_run_runs_again_within_the_executors_attempts(tmp_path, attempts, requeued):
    scheduler, _ = make_scheduler(tmp_path, {"max_parallel": 1}, n=1, max_attempts=3)
    run = scheduler.source.take()  # started
    scheduler.manifest.update_run(run.run_id, status="running", attempts=attempts)
    spec = ContainerSpec("i", "n", {}, tmp_path, "1:1")
    job = RunJob(run, Slot(), tmp_path, spec, 9, 9, HostRun("t_1", run.run_id, (), GpuSettings()))
    scheduler.flights[run.run_id] = Flight(job)
    scheduler.pool.take(0)
    now = time.time()
    scheduler._collect(
        JobDone(job, ContainerExit(None, None, False, None, now, now), requeue="lost")
    )
    record = scheduler.manifest.record.runs[run.run_id]
    if requeued:
        assert record.status == "pending" and list(scheduler.source.queued) == [run]
        assert "attempt 2 of 3" in (record.error or "") and record.executor_job_id is None
    else:
        assert (record.status, record.error_type) == ("failed", "NodeFailure")
        assert not scheduler.source.queued


def test_every_container_is_given_its_own_deadline_past_the_hosts_timeout(tmp_path: Path) -> None:
    """config.json carries the deadline the container enforces itself (the host's timeout plus
    a margin), so no container outlives its timeout even if llem is killed -9."""
    from llenergymeasure.contract.run import RunRequest
    from llenergymeasure.orchestrator.machine.container import DEADLINE_MARGIN_S

    scheduler, executor = make_scheduler(tmp_path, {"experiment_timeout_s": 300}, n=1)
    _no_tables(scheduler)
    scheduler.run()
    (job,) = executor.started
    request = RunRequest.model_validate_json((job.workdir / "config.json").read_bytes())
    assert job.timeout_s == 300
    assert request.context.deadline_s == 300 + DEADLINE_MARGIN_S
