"""How a Slurm job's end becomes the scheduler's JobDone (README: "Running on a Slurm cluster").

Slurm's job state explains an end before llem's own record from the node does: TIMEOUT is
Slurm's time limit (killed_timeout), OUT_OF_MEMORY its memory limit (killed_oom), CANCELLED a
scancel (interrupted); NODE_FAIL, PREEMPTED and BOOT_FAIL lost the run (run again, attempts
bounded); a job that ended without llem's record from the node crashed, with the tail of its
Slurm output.
"""

from __future__ import annotations

import dataclasses
import time

from llenergymeasure.orchestrator.executors.base import JobDone, Placement, RunJob
from llenergymeasure.orchestrator.executors.slurm.commands import TaskState
from llenergymeasure.orchestrator.executors.slurm.node_job import NodeExit
from llenergymeasure.orchestrator.machine.container import ContainerExit, KillReason

REQUEUE_STATES = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"})


def job_done(
    job: RunJob,
    task: TaskState,
    node_exit: NodeExit | None,
    *,
    output: str,
    output_tail: str,
    concurrent: frozenset[str] | None,
) -> JobDone:
    """`output`: the job's Slurm output file, named in a crash's message."""
    if node_exit is not None:
        exit_ = node_exit.container_exit()
        placement: Placement | None = Placement(
            node_exit.node, node_exit.gpu_indices, node_exit.gpu_uuids, node_exit.cpuset
        )
        host = node_exit.host
    else:
        now = time.time()
        exit_ = ContainerExit(None, task.exit_code, False, None, now, now)
        placement = Placement(task.node, [], [], None) if task.node else None
        host = None
    done = JobDone(job, exit_, host=host, placement=placement, concurrent=concurrent)
    state, where = task.state, f"Slurm job {task.job_id}"
    if state in REQUEUE_STATES:
        return dataclasses.replace(
            done, detail=f"{where}: {state}", requeue=f"{where} ended {state}"
        )
    if state == "TIMEOUT":
        return dataclasses.replace(
            done,
            exit=dataclasses.replace(exit_, killed_for=KillReason.TIMEOUT),
            detail=f"{where} reached Slurm's time limit (TIMEOUT)",
        )
    if state == "OUT_OF_MEMORY":
        return dataclasses.replace(
            done,
            exit=dataclasses.replace(exit_, oom_killed=True, exit_code=exit_.exit_code or 137),
            detail=f"{where} went over its Slurm memory limit (OUT_OF_MEMORY)",
        )
    if state in ("CANCELLED", "DEADLINE"):
        killed = exit_.killed_for or KillReason.INTERRUPT
        return dataclasses.replace(
            done,
            exit=dataclasses.replace(exit_, killed_for=killed),
            detail=f"{where} was cancelled ({state})",
        )
    if node_exit is None:
        code = "" if task.exit_code is None else f", exit code {task.exit_code}"
        return dataclasses.replace(
            done,
            crash=f"{where} ended {state}{code} without llem's record from the node; its "
            f"output: {output}",
            log_tail=output_tail or None,
        )
    return done
