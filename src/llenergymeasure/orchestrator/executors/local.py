"""The local executor: each run's container on this host's engine, in a slot of disjoint GPUs
(or host CPUs) from the study's pools, `execution.max_parallel` at once.

Its pre-flight checks that every run fits its pool and names what the host must lock: the
GPUs, and for CPU runs the CPUs they are pinned to (all usable CPUs when unpinned). Each job's
per-run host lifecycle (`machine/lifecycle.py`, around `container.run_container`) runs in a
thread of its own; the container's watch enforces the job's timeout, stall limit and stop.
"""

from __future__ import annotations

import os
import queue
import threading
import time

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import (
    Executor,
    HostNeeds,
    JobDone,
    RunJob,
    StudyAt,
)
from llenergymeasure.orchestrator.machine.container import ContainerExit, run_container
from llenergymeasure.orchestrator.machine.gate import Gate, enter_pressed
from llenergymeasure.orchestrator.machine.orphans import remove_orphans
from llenergymeasure.orchestrator.machine.slots import SlotPool, cpu_groups_for
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.orchestrator.planned import PlannedStudy


class LocalExecutor(Executor):
    def __init__(self, at: StudyAt) -> None:
        assert at.client is not None  # the pre-flight connected to the engine
        self.at, self.client = at, at.client
        self._done: queue.Queue[JobDone] = queue.Queue()
        self._stops: dict[str, StopState] = {}

    @classmethod
    def preflight(cls, planned: PlannedStudy, say: Display) -> HostNeeds:
        """Every run fits its pool; the GPUs and CPUs the study locks. CPU runs lock the CPUs
        they are pinned to, or, unpinned, every CPU llem may use."""
        execution, runs = planned.study.execution, planned.plan.runs
        gpu_ids = execution.gpu_ids
        for run in runs:
            if run.config.gpu_count > len(gpu_ids):
                raise UserError(
                    f"run {run.run_id} needs {run.config.gpu_count} GPUs but execution.gpu_ids "
                    f"lists {len(gpu_ids)}",
                    hint="list more GPU indices under execution.gpu_ids",
                )
        cpu_runs = any(run.config.gpu_count == 0 for run in runs)
        host_cpus = sorted(os.sched_getaffinity(0))
        groups = cpu_groups_for(execution.cpu_ids, host_cpus, execution.max_parallel, cpu_runs)
        # One run at a time takes the first GPUs of the pool; several may use all of it.
        widest = max(run.config.gpu_count for run in runs)
        gpus = gpu_ids[:widest] if execution.max_parallel == 1 else list(gpu_ids)
        cpus: list[int] = []
        if cpu_runs:
            cpus = sorted({c for group in groups for c in group}) if groups else host_cpus
        return HostNeeds(gpus=gpus if widest > 0 else [], cpus=cpus, cpu_groups=groups)

    @classmethod
    def open(cls, at: StudyAt) -> LocalExecutor:
        executor = cls(at)
        removed = remove_orphans(executor.client)
        if removed:
            at.display.note(
                f"removed {removed} container(s) left by a llem process that no longer runs"
            )
        return executor

    def slot_pool(self) -> SlotPool:
        execution = self.at.execution
        return SlotPool(execution.gpu_ids, execution.max_parallel, self.at.cpu_groups)

    def gate(self) -> Gate:
        return Gate(self.at.execution, self.at.probes, self.at.display, skip=enter_pressed)

    def node_at_start(self) -> str | None:
        return os.uname().nodename

    def engine_lost(self, done: JobDone) -> str | None:
        """A daemon shutting down closes its socket, then stops its containers: the run looks
        failed (an engine error, an exit code, maybe an error.json) although only the engine
        went away."""
        exit_ = done.exit
        if self.at.probes.engine_answers(self.at.execution.container_engine):
            return None
        return exit_.engine_error or f"its container stopped with exit code {exit_.exit_code}"

    def start(self, job: RunJob) -> None:
        stop = StopState()
        self._stops[job.run.run_id] = stop
        thread = threading.Thread(
            target=self._lifecycle, args=(job, stop), name=f"run-{job.run.run_id}", daemon=True
        )
        thread.start()

    def _lifecycle(self, job: RunJob, stop: StopState) -> None:
        """The machine's per-run lifecycle around the container (this thread's alone: the
        run's GPUs are its slot's, locked by the study's pre-flight)."""

        def container() -> ContainerExit:
            return run_container(self.client, job.spec, job.timeout_s, job.stall_timeout_s, stop)

        try:
            exit_, host = self.at.machine.run(job.host, container)
            self._done.put(JobDone(job, exit_, host=host))
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

    def cancel(self, run_id: str, *, force: bool = False) -> None:
        stop = self._stops.get(run_id)
        if stop is None:
            return
        stop.request()
        if force and not stop.immediate:
            stop.request()

    @property
    def in_flight(self) -> list[str]:
        return list(self._stops)
