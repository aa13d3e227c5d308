"""How a Slurm job's end maps to the run's outcome."""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.orchestrator.executors.base import RunJob
from llenergymeasure.orchestrator.executors.outcome import classify
from llenergymeasure.orchestrator.executors.slurm import commands
from llenergymeasure.orchestrator.executors.slurm.node_job import (
    NodeExit,
)
from llenergymeasure.orchestrator.executors.slurm.outcomes import job_done
from llenergymeasure.orchestrator.machine.container import ContainerExit, ContainerSpec, KillReason
from llenergymeasure.orchestrator.machine.lifecycle import HostRun
from llenergymeasure.orchestrator.machine.slots import Slot


def _job(tmp_path: Path) -> RunJob:
    spec = ContainerSpec("sha256:x", "n", {}, tmp_path, "1:1")
    host = HostRun("s", "0000_abcd0000_c0", (), GpuSettings())
    return RunJob(None, Slot(), tmp_path, spec, 60.0, 30.0, host)  # type: ignore[arg-type]


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
