"""`llem node-run STUDY_DIR RUNS_FILE`: one planned run on a compute node, inside its Slurm job.

The node's share of the run, the same code as a local study's: wait the gap after the previous
run on this node (and the cool-down), lock exactly the GPUs Slurm allocated in the node's own
lock folder (node-local: `locks.lock_dir()`), then the machine's per-run host lifecycle
(`machine/lifecycle.py`: leftovers of this allocation put back, foreign processes, GPU
settings, the container on the node's engine bound to those GPUs by physical UUID and to the
job's CPUs, settings put back), and write how it ended (`<run>.exit.json`). The submitting llem
reads that and the work folder; it alone writes the manifest.

A node's last run is remembered in `<study>/slurm/nodes/<node>.json` (when it ended, its
cycle): with exclusive nodes, runs on one node never overlap, so "the previous run on this node"
is well defined.

Every file the node reads from the study folder (the batch's run list, the job, its node's last
run) must be this user's, 0600 and regular (`node_job.read_private`): the node runs nothing that
someone else could have written. It builds the container itself from the job (`NodeJob`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

from llenergymeasure.contract.run import Placement
from llenergymeasure.contract.workdir import RUN_ID_PATTERN, WorkPaths
from llenergymeasure.contract.workdir import atomic_write_json as write_json
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.slurm.batches import NODES_DIR, slurm_dir
from llenergymeasure.orchestrator.executors.slurm.node_job import (
    PRIVATE,
    NodeExit,
    jobs_dir,
    read_node_job,
    read_private,
)
from llenergymeasure.orchestrator.machine.container import (
    ENGINE_ERRORS,
    ContainerExit,
    KillReason,
    run_container,
)
from llenergymeasure.orchestrator.machine.container_user import engine_process_limits
from llenergymeasure.orchestrator.machine.engine import ENGINES, connect, require_nvidia_runtime
from llenergymeasure.orchestrator.machine.gate import Gate
from llenergymeasure.orchestrator.machine.host_gpus import gpu_uuids
from llenergymeasure.orchestrator.machine.lifecycle import (
    HostFindings,
    HostRun,
    Machine,
    Refusal,
)
from llenergymeasure.orchestrator.machine.locks import HostLocks
from llenergymeasure.orchestrator.machine.orphans import remove_orphans
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.orchestrator.machine.slots import Slot
from llenergymeasure.orchestrator.machine.stop import StopState, handle_signals
from llenergymeasure.study import work_files
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.untrusted import UntrustedFile, own_folder


def allocated_gpus() -> list[int]:
    """The node's GPU indices Slurm gave this job: SLURM_JOB_GPUS (the node's numbering),
    else CUDA_VISIBLE_DEVICES where it lists indices."""
    for name in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(name, "").strip()
        if value and all(part.strip().isdigit() for part in value.split(",")):
            return [int(part) for part in value.split(",")]
    return []


def run_id_of_task(runs_file: Path, task_index: int) -> str:
    try:
        lines = read_private(runs_file).decode("utf-8", errors="replace").split()
    except (OSError, UntrustedFile) as error:
        raise UserError(f"{runs_file}: not a run list llem wrote for this user ({error})") from None
    if not 0 <= task_index < len(lines):
        raise UserError(f"{runs_file} has no run for array task {task_index}")
    if not re.fullmatch(RUN_ID_PATTERN, lines[task_index]):
        raise UserError(f"{runs_file}: line {task_index + 1} is not a run id")
    return lines[task_index]


NODE_RESOURCE = ("node",)  # exclusive nodes: a run's gap follows the node's previous run


class NodeRun:
    """One run on this node; `execute` returns the process's exit code."""

    def __init__(self, study_dir: Path, run_id: str) -> None:
        self.study_dir = study_dir
        self.workdir = StudyPaths(study_dir).work(run_id)
        self.node = os.uname().nodename
        self.jobs = jobs_dir(slurm_dir(study_dir))
        self.job = read_node_job(self.jobs, run_id)
        nodes = own_folder(slurm_dir(study_dir) / NODES_DIR, hint="the study folder must be yours")
        self.last_run_file = nodes / f"{self.node}.json"
        self.machine = Machine(HostProbes())

    def execute(self) -> int:
        with handle_signals(StopState()) as stop:
            # An exclusive job may be given every GPU of the node: the run takes the first ones.
            gpus = allocated_gpus()[: self.job.run.config.gpu_count]
            cpuset = ",".join(map(str, sorted(os.sched_getaffinity(0))))
            found = gpu_uuids(gpus) if gpus else {}
            uuids = [found[i] for i in gpus] if isinstance(found, dict) else []
            exit_, host = self._lifecycle(gpus, uuids, cpuset, stop)
            self._remember_last_run()
            outcome = NodeExit.of(
                exit_,
                node=self.node,
                gpu_indices=gpus,
                gpu_uuids=uuids,
                cpuset=cpuset,
                host=host,
            )
            outcome.write(self.jobs, self.job.run.run_id)
        return 0

    def _lifecycle(
        self, gpus: list[int], uuids: list[str], cpuset: str, stop: StopState
    ) -> tuple[ContainerExit, HostFindings | None]:
        started = time.time()
        problem = self._placement_problem(gpus)
        if problem is not None:
            return self._refused(started, "NodePlacement", problem)
        self._wait_gap_and_cooldown(gpus, stop)
        if stop.requested:
            exit_ = ContainerExit(None, None, False, KillReason.INTERRUPT, started, time.time())
            return exit_, None
        run = self.job.run
        host = HostRun(
            study_id=self.job.context.study_id,
            run_id=run.run_id,
            gpus=tuple(gpus),
            settings=run.config.gpu,
            foreign_gpu_processes=self.job.execution.foreign_gpu_processes,
            gpu_off_default=self.job.execution.gpu_off_default,
        )
        try:  # this allocation's GPUs, locked on this node for the run
            locks = HostLocks(gpus, self.job.context.study_id).acquire()
        except UserError as error:
            return self._refused(started, "GpuInUse", str(error))
        try:
            return self.machine.run(host, lambda: self._run(gpus, uuids, cpuset, stop))
        finally:
            locks.release()

    @staticmethod
    def _refused(
        started: float, error_type: str, message: str
    ) -> tuple[ContainerExit, HostFindings]:
        """The run not started on this node, and why."""
        refusal = Refusal(error_type=error_type, message=message)
        exit_ = ContainerExit(None, None, False, None, started, time.time())
        return exit_, HostFindings(refused=refusal)

    @staticmethod
    def _say(message: str) -> None:
        print(f"llem node-run: {message}", file=sys.stderr, flush=True)

    def _placement_problem(self, gpus: list[int]) -> str | None:
        if len(gpus) < self.job.run.config.gpu_count:
            return (
                f"the run needs {self.job.run.config.gpu_count} GPU(s) but Slurm gave this job "
                f"{len(gpus)} (SLURM_JOB_GPUS={os.environ.get('SLURM_JOB_GPUS', '')!r}); "
                "check execution.slurm.gres against the cluster's gres.conf"
            )
        return None

    def _wait_gap_and_cooldown(self, gpus: list[int], stop: StopState) -> None:
        """The gate every run passes (`gate.py`), with this node's last run as the previous."""
        gate = Gate(self.job.execution, HostProbes(), Display(), clock=time.time)
        previous = self._last_run()
        if previous is not None:
            gate.give_back(NODE_RESOURCE, int(previous["cycle"]), at=previous["finished_at"])
        run = self.job.run
        gate.wait(run.run_id, run.cycle, NODE_RESOURCE, tuple(gpus), stop)

    def _run(
        self, gpus: list[int], uuids: list[str], cpuset: str, stop: StopState
    ) -> ContainerExit:
        engine = self.job.execution.container_engine
        # This node's limits, not the submitter's, where the engine must be told them.
        defaults = engine_process_limits() if ENGINES[engine].states_nofile_nproc else {}
        limits = dataclasses.replace(self.job.context.limits, engine_defaults=defaults)
        slot = Slot(gpus=tuple(gpus), cpus=tuple(int(c) for c in cpuset.split(",")))
        _, spec = self.job.container(
            self.workdir, slot, gpu_uuids=dict(zip(gpus, uuids, strict=False)), limits=limits
        )
        spec.name = f"{spec.name}-{self.node}"
        # Where it runs (this node's GPUs and CPUs) in a file of its own: config.json stays the
        # submitting host's.
        placement = Placement(node=self.node, gpu_indices=gpus, gpu_uuids=uuids, cpuset=cpuset)
        work_files.write(self.workdir, WorkPaths.PLACEMENT, placement)
        started = time.time()
        try:
            client = connect(engine)
            remove_orphans(client)
            if gpus:
                require_nvidia_runtime(client)
            client.images.get(spec.image_id)
        except UserError as error:
            return ContainerExit(None, None, False, None, started, time.time(), str(error))
        except ENGINE_ERRORS as error:  # the engine answered but has no such image
            message = f"image {spec.image_id} is not on node {self.node} ({error})"
            return ContainerExit(None, None, False, None, started, time.time(), message)
        return run_container(client, spec, self.job.timeout_s, self.job.stall_timeout_s, stop)

    def _last_run(self) -> dict[str, float] | None:
        try:
            data = json.loads(read_private(self.last_run_file))
            return {"finished_at": float(data["finished_at"]), "cycle": int(data["cycle"])}
        except (OSError, UntrustedFile, ValueError, KeyError, TypeError):
            return None

    def _remember_last_run(self) -> None:
        run = self.job.run
        last = {"finished_at": time.time(), "cycle": run.cycle, "run_id": run.run_id}
        write_json(self.last_run_file, last, mode=PRIVATE)


def node_run(study_dir: Path, runs_file: Path) -> int:
    """The entry of `llem node-run`: the run of this array task (SLURM_ARRAY_TASK_ID)."""
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if task is None or not task.isdigit():
        raise UserError(
            "llem node-run runs inside a Slurm array job (SLURM_ARRAY_TASK_ID is not set)",
            hint="`llem run --executor slurm` submits it; it is not run by hand",
        )
    run_id = run_id_of_task(runs_file, int(task))
    print(f"llem node-run: run {run_id} on {os.uname().nodename}", file=sys.stderr, flush=True)
    return NodeRun(study_dir.resolve(), run_id).execute()
