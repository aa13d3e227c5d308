"""The Slurm executor's pure parts: Slurm's output parsed, sbatch's arguments, the time limit,
how a job's end maps to ours, what the node reads from its environment, the files the two
sides exchange, and the requeue rule of the study runner."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from test_study_runner import _runner

from llenergymeasure.config.study import ExecutionConfig, SlurmConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.container import ContainerExit, ContainerSpec, KillReason
from llenergymeasure.orchestrator.container_user import engine_process_limits
from llenergymeasure.orchestrator.engine import ResolvedImage
from llenergymeasure.orchestrator.executor import JobDone, RunJob
from llenergymeasure.orchestrator.outcome import classify
from llenergymeasure.orchestrator.runner import _Flight
from llenergymeasure.orchestrator.slots import Slot, SlotPool
from llenergymeasure.orchestrator.slurm import commands
from llenergymeasure.orchestrator.slurm.batches import (
    Batch,
    existing_batches,
    new_batch,
    sbatch_args,
    time_limit_min,
)
from llenergymeasure.orchestrator.slurm.node import allocated_gpus, run_id_of_task
from llenergymeasure.orchestrator.slurm.node_job import (
    NodeExit,
    NodeJob,
    jobs_dir,
    read_node_exit,
    read_node_job,
)
from llenergymeasure.orchestrator.slurm.outcomes import job_done
from llenergymeasure.orchestrator.slurm.probe import probe_args


def test_squeue_lines_one_per_task_pending_and_ended():
    text = "41|0|RUNNING|node7|llem.s.b0001\n41|1|PENDING||llem.s.b0001\n39|N/A|COMPLETED|n|x\n"
    tasks = commands.parse_squeue(text)
    assert [(t.job_id, t.state, t.node, t.ended) for t in tasks] == [
        ("41_0", "RUNNING", "node7", False),
        ("41_1", "PENDING", None, False),
        ("39", "COMPLETED", "n", True),  # a plain job: its own record
    ]


def test_sacct_lines_with_exit_codes_and_never_started_ranges():
    text = (
        "28_0|llem.s.b0001|CANCELLED by 0|0:15|vm\n"
        "28_[0-2,5%2]|llem.s.b0001|CANCELLED by 0|0:0|None assigned\n"
        "30_1|llem.s.b0002|OUT_OF_MEMORY|0:125|vm\n"
        "31_0|llem.s.b0003|FAILED|7:0|vm\n"
    )
    tasks = {t.job_id: t for t in commands.parse_sacct(text)}
    assert sorted(tasks) == ["28_0", "28_1", "28_2", "28_5", "30_1", "31_0"]
    assert tasks["28_0"].node == "vm" and tasks["28_0"].signal == 15  # its own line wins
    assert tasks["28_1"].state == "CANCELLED" and tasks["28_1"].node is None
    assert tasks["31_0"].exit_code == 7 and tasks["31_0"].ended
    assert commands.task_indices("[3-4%1]") == [3, 4] and commands.task_indices("9") == [9]


def test_an_arrays_own_record_stands_for_tasks_cancelled_before_they_started():
    # seen on Slurm 22.05: pending tasks cancelled together keep no record of their own
    queued = commands.parse_squeue("28|N/A|CANCELLED||ccx\n28|0|CANCELLED|vm|ccx\n")
    assert [(t.job_id, t.index, t.state) for t in queued] == [
        ("28", commands.REST, "CANCELLED"),
        ("28_0", 0, "CANCELLED"),
    ]
    accounted = commands.parse_sacct(
        "28_0|ccx|CANCELLED by 0|0:15|vm\n28|ccx|CANCELLED by 0|0:0|\n"
    )
    assert {t.job_id: t.state for t in accounted} == {"28_0": "CANCELLED", "28": "CANCELLED"}


RUN_IDS = ["0000_0123abcd_c0", "0001_0123abcd_c1", "0002_4567abcd_c0"]


def test_batches_count_up_and_are_found_again(tmp_path):
    first = new_batch(tmp_path, "s_1", RUN_IDS[:2])
    first.write()
    second = new_batch(tmp_path, "s_1", RUN_IDS[2:])
    second.write()
    assert (first.tag, second.tag) == ("b0001", "b0002")
    assert second.name == "llem.s_1.b0002"
    assert existing_batches(tmp_path, "s_1") == [first, second]
    assert run_id_of_task(first.runs_file, 1) == RUN_IDS[1]
    assert (tmp_path / "slurm").stat().st_mode & 0o777 == 0o700
    assert first.runs_file.stat().st_mode & 0o777 == 0o600


def test_a_run_list_someone_else_could_write_is_not_run(tmp_path):
    batch = new_batch(tmp_path, "s_1", RUN_IDS[:1])
    batch.write()
    batch.runs_file.chmod(0o666)
    with pytest.raises(UserError, match="not a run list llem wrote"):
        run_id_of_task(batch.runs_file, 0)
    assert existing_batches(tmp_path, "s_1") == []
    batch.runs_file.chmod(0o600)
    batch.runs_file.write_text("../../etc\n")
    with pytest.raises(UserError, match="is not a run id"):
        run_id_of_task(batch.runs_file, 0)


def test_sbatch_arguments_carry_every_setting(tmp_path):
    settings = SlurmConfig(
        partition="gpu",
        account="proj",
        qos="high",
        gres="gpu:a100",
        max_concurrent_jobs=4,
        extra_args=["--constraint=h100"],
        llem_command=["/shared/venv/bin/llem"],
    )
    batch = Batch(tmp_path, "s_1", "b0003", ("r0", "r1", "r2"))
    args = sbatch_args(batch, settings, gpu_count=2, minutes=75)
    assert "--job-name=llem.s_1.b0003" in args and "--array=0-2%4" in args
    assert "--time=75" in args and "--no-requeue" in args and "--exclusive" in args
    assert "--gres=gpu:a100:2" in args and "--constraint=h100" in args
    assert {"--partition=gpu", "--account=proj", "--qos=high"} <= set(args)
    assert f"--output={tmp_path}/slurm/b0003_%a.out" in args
    percent = Batch(tmp_path / "100%", "s_1", "b0001", ("r0",))
    assert f"--output={tmp_path}/100%%/slurm/b0001_%a.out" in sbatch_args(
        percent, settings, gpu_count=0, minutes=5
    )
    assert args[-1] == f"--wrap=exec /shared/venv/bin/llem node-run {tmp_path} {batch.runs_file}"
    cpu = sbatch_args(batch, SlurmConfig(exclusive=False), gpu_count=0, minutes=5)
    assert not any(a.startswith(("--gres", "--exclusive", "--partition")) for a in cpu)
    assert cpu[-1].startswith(f"--wrap=exec {sys.executable} -m llenergymeasure node-run ")


def test_time_limit_is_the_runs_need_plus_a_margin_unless_set():
    assert time_limit_min(SlurmConfig(), 3000.0) == 60  # (3000 + 600) / 60
    assert time_limit_min(SlurmConfig(), 1.0) == 11
    assert time_limit_min(SlurmConfig(time_limit_min=7), 3000.0) == 7


def _job(tmp_path: Path) -> RunJob:
    spec = ContainerSpec("sha256:x", "n", {}, tmp_path, "1:1")
    return RunJob(None, Slot(), tmp_path, spec, 60.0, 30.0)  # type: ignore[arg-type]


def _exit(**changes) -> NodeExit:
    base = ContainerExit("cid", 0, False, None, 1.0, 2.0)
    return NodeExit.of(
        base, node="n1", gpu_indices=[3], gpu_uuids=["GPU-x"], cpuset="0-3"
    ).model_copy(update=changes)


def _task(state: str, exit_code: int | None = 0) -> commands.TaskState:
    return commands.TaskState("9", 0, "llem.s.b0001", state, "n1", exit_code)


def _done(tmp_path, state, node_exit=None, exit_code=0):
    return job_done(
        _job(tmp_path),
        _task(state, exit_code),
        node_exit,
        output="/o/b0001_0.out",
        output_tail="last words",
        concurrent=frozenset(),
    )


def test_slurm_states_map_to_outcomes(tmp_path):
    done = _done(tmp_path, "COMPLETED", _exit())
    assert done.exit.container_id == "cid" and done.placement.gpu_uuids == ["GPU-x"]
    assert done.detail is None and done.requeue is None and done.crash is None

    timeout = _done(tmp_path, "TIMEOUT", _exit(killed_for=KillReason.INTERRUPT))
    assert timeout.exit.killed_for is KillReason.TIMEOUT and "time limit" in timeout.detail
    oom = _done(tmp_path, "OUT_OF_MEMORY")
    assert oom.exit.oom_killed and oom.exit.exit_code == 137
    assert classify(tmp_path, 137, True, None).outcome == "killed_oom"
    cancelled = _done(tmp_path, "CANCELLED")
    assert cancelled.exit.killed_for is KillReason.INTERRUPT
    for lost in ("NODE_FAIL", "PREEMPTED", "BOOT_FAIL"):
        assert lost in _done(tmp_path, lost).requeue
    crash = _done(tmp_path, "FAILED", exit_code=7)
    assert "FAILED, exit code 7" in crash.crash and "/o/b0001_0.out" in crash.crash
    assert crash.log_tail == "last words"


def test_the_node_reads_its_gpus_from_slurm(monkeypatch):
    for name in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    assert allocated_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")  # UUIDs: not indices
    assert allocated_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("SLURM_JOB_GPUS", "2,5")
    assert allocated_gpus() == [2, 5]  # the node's numbering wins


def _node_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodeJob:
    runner, _ = _runner(tmp_path, {"executor": "slurm"}, n=1)
    return NodeJob(
        run=runner.plan[0],
        context=runner.ctx,
        image=ResolvedImage("img", "sha256:" + "1" * 64, None),
        timeout_s=5.0,
        stall_timeout_s=6.0,
        execution=ExecutionConfig(executor="slurm"),
    )


def test_node_files_round_trip_private_and_hold_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_in_any_file")
    job = _node_job(tmp_path, monkeypatch)
    jobs = jobs_dir(tmp_path / "slurm")
    job.write(jobs)
    path = jobs / f"{job.run.run_id}.job.json"
    assert path.stat().st_mode & 0o777 == 0o600 and "hf_not_in_any_file" not in path.read_text()
    again = read_node_job(jobs, job.run.run_id)
    assert again == job
    workdir = tmp_path / "w"
    request, spec = again.container(workdir, Slot(cpus=(0, 1)))
    assert spec.entrypoint is None and spec.command is None  # the image's own: llem's runner
    assert spec.user == job.context.user.spec and not spec.user.startswith("0:")
    assert "HF_TOKEN" not in spec.environment and spec.network_none
    assert request.context.cpuset == "0,1" and spec.workdir == workdir
    exit_ = ContainerExit("c", 3, False, KillReason.STALL, 1.0, 2.5, None, 4)
    node_exit = NodeExit.of(exit_, node="n", gpu_indices=[], gpu_uuids=[], cpuset="0")
    node_exit.write(jobs, job.run.run_id)
    assert read_node_exit(jobs, job.run.run_id).container_exit() == exit_


@pytest.mark.parametrize("tamper", ["mode", "link", "other-run"])
def test_a_job_file_that_is_not_the_submitters_is_refused(tmp_path, monkeypatch, tamper):
    job = _node_job(tmp_path, monkeypatch)
    jobs = jobs_dir(tmp_path / "slurm")
    job.write(jobs)
    path = jobs / f"{job.run.run_id}.job.json"
    if tamper == "mode":
        path.chmod(0o644)
    elif tamper == "link":
        target = tmp_path / "elsewhere.json"
        path.rename(target)
        path.symlink_to(target)
    else:
        path.rename(jobs / "0009_0123abcd_c0.job.json")
        with pytest.raises(UserError, match="describes run"):
            read_node_job(jobs, "0009_0123abcd_c0")
        return
    with pytest.raises(UserError, match="not a job llem wrote for this user"):
        read_node_job(jobs, job.run.run_id)


def test_probe_runs_one_short_task_on_the_partition():
    args = probe_args(SlurmConfig(partition="p", account="a"), ["/x", "/y"])
    assert args[:2] == ["srun", "--quiet"] and "--partition=p" in args and "--account=a" in args
    assert args[-2:] == ["/x", "/y"] and "--exclusive" not in args


def test_engine_limits_stay_within_the_process_and_the_kernel():
    import resource

    limits = engine_process_limits()
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert limits["nofile"] in (nofile_hard, -1)
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert 0 < limits["nproc"] <= pid_max


def test_an_unbounded_pool_fits_every_run_without_resources():
    pool = SlotPool.unbounded()
    slots = [pool.take(gpus) for gpus in (0, 4, 8, 0)]
    assert all(slot == Slot() for slot in slots) and pool.fits(1000)
    for slot in slots:
        pool.give_back(slot)


@pytest.mark.parametrize("attempts, requeued", [(1, True), (3, False)])
def test_a_lost_run_is_submitted_again_within_max_attempts(tmp_path, attempts, requeued):
    runner, _ = _runner(tmp_path, {"max_parallel": 1, "executor": "slurm"}, n=1)
    run = runner.plan[0]
    runner.manifest.update_run(run.run_id, status="running", attempts=attempts)
    job = RunJob(run, Slot(), tmp_path, ContainerSpec("i", "n", {}, tmp_path, "1:1"), 9, 9)
    runner.flights[run.run_id] = _Flight(job)
    runner.pool.take(0)
    now = time.time()
    runner._collect(JobDone(job, ContainerExit(None, None, False, None, now, now), requeue="lost"))
    record = runner.manifest.record.runs[run.run_id]
    if requeued:
        assert record.status == "pending" and list(runner.todo) == [run]
        assert "attempt 2 of 3" in record.error
    else:
        assert (record.status, record.error_type) == ("failed", "NodeFailure")
        assert not runner.todo
