"""SlurmExecutor: the scheduler's jobs as Slurm array tasks, followed by squeue/sacct.

`start` only queues a job; the next `wait` submits everything queued, consecutive runs of the
same GPU count as one array (capped by `max_concurrent_jobs`). `wait` asks squeue at most every
`poll_s`, and sacct for tasks the controller no longer lists. Cancels are gathered into one
scancel per tick: the first asks politely (Slurm's SIGTERM to the node's llem, which stops its
container with the usual grace), the second signals again at once (the node's llem kills it).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.config.executors import SlurmSettings
from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import (
    Executor,
    HostNeeds,
    JobDone,
    RunJob,
    StudyAt,
)
from llenergymeasure.orchestrator.executors.collect import Collector
from llenergymeasure.orchestrator.executors.slurm import commands
from llenergymeasure.orchestrator.executors.slurm.batches import (
    Batch,
    existing_batches,
    new_batch,
    private_slurm_dir,
    sbatch_args,
    time_limit_min,
)
from llenergymeasure.orchestrator.executors.slurm.commands import SlurmUnreachable, TaskState
from llenergymeasure.orchestrator.executors.slurm.node_job import (
    NodeExit,
    NodeJob,
    exit_path,
    jobs_dir,
    read_node_exit,
    read_node_job,
)
from llenergymeasure.orchestrator.executors.slurm.outcomes import job_done
from llenergymeasure.orchestrator.executors.slurm.probe import probe_shared_paths
from llenergymeasure.orchestrator.machine import run_spec
from llenergymeasure.orchestrator.machine.container import ContainerExit, KillReason
from llenergymeasure.orchestrator.machine.gate import COOLDOWN_MAX_WAIT_S, Gate
from llenergymeasure.orchestrator.machine.locks import writer_lock
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.orchestrator.machine.slots import Slot, SlotPool
from llenergymeasure.orchestrator.planned import PlannedStudy
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import Manifest, load_manifest
from llenergymeasure.study.manifest_models import RunRecord
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.paths import host_path
from llenergymeasure.study.search_space import study_runs
from llenergymeasure.study.work_files import log_tail

# A task Slurm says COMPLETED (the node's llem exited 0, having written node_exit.json) whose
# node_exit.json is not visible here yet (shared storage lags): looked for this long before
# the run counts as crashed. Any other end without it needs no wait: the node's llem failed.
NODE_EXIT_GRACE_S = 20.0
# squeue has no exit code: for a job that ended without node_exit.json, accounting is asked
# for it for up to this long (slurmdbd records a job's end a moment after the controller).
ACCOUNTING_GRACE_S = 10.0
CRASH_STATES = ("COMPLETED", "FAILED")
OPEN_STATUSES = ("running", "pending")  # ends that are a crash without node_exit.json
# The controller may be restarted under a running study: squeue failing is tolerated this long.
UNREACHABLE_LIMIT_S = 120.0
OUTPUT_TAIL_LINES = 20
# How often the work folders of running tasks are looked at for node_exit.json (one stat each).
EXIT_WATCH_S = 0.5


@dataclass
class _Task:
    job: RunJob
    batch: Batch
    index: int
    array_id: str
    state: str = "PENDING"
    node: str | None = None
    exit_missing_since: float | None = None
    cancels: int = 0

    @property
    def job_id(self) -> str:
        return f"{self.array_id}_{self.index}"


class SlurmExecutor(Executor):
    jobs_outlive_llem = True

    def __init__(self, study_dir: Path, study_id: str, execution: ExecutionConfig) -> None:
        assert isinstance(execution.executor, SlurmSettings)
        self.study_dir, self.study_id = study_dir, study_id
        self.jobs = jobs_dir(private_slurm_dir(study_dir))
        self.execution = execution
        self.settings = execution.executor
        self._queued: list[RunJob] = []  # started, not yet submitted
        self._tasks: dict[str, _Task] = {}  # run id -> its task, until handed back
        self._new_ids: dict[str, str] = {}
        self._done: list[JobDone] = []
        self._cancel_now: list[str] = []  # job ids: first cancel
        self._signal_again: list[str] = []  # job ids: second cancel
        self._last_poll = float("-inf")
        self._last_exit_watch = float("-inf")
        self._unreachable_since: float | None = None
        self._finished_on: dict[str, list[tuple[str, float, float]]] = {}  # node -> intervals

    # the strategy -------------------------------------------------------------------------------
    @classmethod
    def preflight(cls, planned: PlannedStudy, say: Display) -> HostNeeds:
        """The controller answers; the nodes see the output folder and the local inputs. The
        nodes' GPUs and CPUs are Slurm's to allocate: nothing is locked here."""
        execution = planned.study.execution
        settings = execution.executor
        assert isinstance(settings, SlurmSettings)
        commands.ping()
        if settings.probe_paths:
            inputs = sorted(
                {
                    host_path(item.value, planned.source_dir)
                    for run in planned.plan.runs
                    for item in run_spec.local_inputs(run.config, planned.source_dir)
                }
            )
            output_dir = layout.output_dir_for(planned.path, planned.study.output_dir)
            say.note(probe_shared_paths(settings, output_dir, inputs))
        return HostNeeds(
            images_note="the compute nodes must hold these images by ID "
            f"({execution.container_engine} load / pull by digest)"
        )

    @classmethod
    def open(cls, at: StudyAt) -> SlurmExecutor:
        return cls(at.study_dir, at.study_id, at.execution)

    def slot_pool(self) -> SlotPool:
        return SlotPool.unbounded()  # Slurm places every run

    def gate(self) -> Gate:
        return Gate(None, HostProbes(), Display())  # each node waits its own gap

    @property
    def max_attempts(self) -> int:
        return self.settings.max_attempts

    @classmethod
    def collect_detached(cls, study_dir: Path, display: Display) -> int | None:
        """A study no llem follows (after `--detach`, or a llem that died): its ended jobs go
        through the same collector as an attached llem's (a lost run back to `pending` within
        max_attempts: `llem run --resume` submits it again). Queued and running jobs are left
        as they are. When every run has its outcome, the study ends as an attached one does."""
        if not any(_open(run) for run in load_manifest(study_dir).runs.values()):
            return None
        with writer_lock(study_dir), Manifest.open(study_dir) as manifest:
            open_ids = {r.run_id for r in manifest.record.runs.values() if _open(r)}
            planned, search = study_runs(study_dir, manifest.record)
            runs = [run for run in planned if run.run_id in open_ids]
            if not runs:
                return 0
            jobs = jobs_dir(private_slurm_dir(study_dir))
            execution = read_node_job(jobs, runs[0].run_id).execution
            executor = cls(study_dir, manifest.record.study_id, execution)
            executor.reattach(runs)
            collector = Collector(manifest, study_dir, display, executor)
            ended = executor.wait(0)
            for done in ended:
                collector.record(done, set(done.concurrent or ()))
            statuses = [run.status for run in manifest.record.runs.values()]
            if search is not None:  # only a llem that follows the search can ask for more trials
                display.note("a search: `llem run STUDY.yaml --resume` continues it")
            ended_all = not set(statuses) & set(OPEN_STATUSES)
            if manifest.record.status == "running" and ended_all and search is None:
                collector.finish_study()
            return len(ended)

    @classmethod
    def node_run(cls, study_dir: Path, arguments: list[str]) -> int:
        from llenergymeasure.orchestrator.executors.slurm.node import node_run

        if len(arguments) != 1:
            raise UserError("llem node-run slurm STUDY_DIR RUNS_FILE: one run list")
        return node_run(study_dir, Path(arguments[0]))

    def start(self, job: RunJob) -> None:
        assert job.context is not None and job.image is not None  # the scheduler's jobs have them
        NodeJob(
            run=job.run,
            context=job.context,
            image=job.image,
            timeout_s=job.timeout_s,
            stall_timeout_s=job.stall_timeout_s,
            execution=self.execution,
        ).write(self.jobs)
        self._queued.append(job)

    def wait(self, timeout_s: float) -> list[JobDone]:
        deadline = time.monotonic() + timeout_s
        self._submit_queued()
        self._send_cancels()
        while True:
            now = time.monotonic()
            if self._tasks and self._poll_due(now):
                self._last_poll = now
                self._poll()
            if self._done or now >= deadline:
                break
            time.sleep(min(deadline - now, 0.05))
        done, self._done = self._done, []
        for item in done:
            self._tasks.pop(item.job.run.run_id, None)
        return done

    def _poll_due(self, now: float) -> bool:
        """Every poll_s; sooner (EXIT_WATCH_S) once a running task's node_exit.json is there,
        so a run is collected as it ends, not up to poll_s later."""
        since = now - self._last_poll
        if since >= self.settings.poll_s:
            return True
        if since < EXIT_WATCH_S or now - self._last_exit_watch < EXIT_WATCH_S:
            return False
        self._last_exit_watch = now
        return any(
            task.state == "RUNNING" and exit_path(self.jobs, task.job.run.run_id).exists()
            for task in self._tasks.values()
        )

    def cancel(self, run_id: str, *, force: bool = False) -> None:
        queued = next((job for job in self._queued if job.run.run_id == run_id), None)
        if queued is not None:  # never submitted: ends here
            self._queued.remove(queued)
            now = time.time()
            exit_ = ContainerExit(None, None, False, KillReason.INTERRUPT, now, now)
            self._done.append(JobDone(queued, exit_, detail="not submitted"))
            return
        task = self._tasks.get(run_id)
        if task is None:
            return
        task.cancels += 1
        if task.cancels == 1:
            self._cancel_now.append(task.job_id)
        if task.cancels > 1 or force:
            self._signal_again.append(task.job_id)

    @property
    def in_flight(self) -> list[str]:
        return [job.run.run_id for job in self._queued] + list(self._tasks)

    def submitted(self) -> dict[str, str]:
        new, self._new_ids = self._new_ids, {}
        return new

    @property
    def all_submitted(self) -> bool:
        return not self._queued

    def reattach(self, runs: list[PlannedRun]) -> list[RunJob]:
        """Runs whose newest batch Slurm still knows (queued, running or ended, from squeue or
        sacct) are followed again, never submitted twice."""
        batches = existing_batches(self.study_dir, self.study_id)
        if not batches:
            return []
        arrays = {task.name: task.array_id for task in commands.jobs_named(b.name for b in batches)}
        newest: dict[str, Batch] = {}
        for batch in batches:  # oldest first: the newest known batch of a run wins
            if batch.name in arrays:
                for run_id in batch.run_ids:
                    newest[run_id] = batch
        jobs = []
        for run in runs:
            batch = newest.get(run.run_id)
            if batch is None:
                continue
            node_job = read_node_job(self.jobs, run.run_id)
            workdir = StudyPaths(self.study_dir).work(run.run_id)
            _, spec = node_job.container(workdir, Slot())
            job = RunJob(
                run,
                Slot(),
                workdir,
                spec,
                node_job.timeout_s,
                node_job.stall_timeout_s,
                node_job.context,
                node_job.image,
            )
            task = _Task(job, batch, batch.run_ids.index(run.run_id), arrays[batch.name])
            self._tasks[run.run_id] = task
            self._new_ids[run.run_id] = task.job_id
            jobs.append(job)
        return jobs

    # submitting ---------------------------------------------------------------------------------
    def _submit_queued(self) -> None:
        while self._queued:
            width = self._queued[0].run.config.gpu_count
            group = []
            while self._queued and self._queued[0].run.config.gpu_count == width:
                group.append(self._queued.pop(0))
            self._submit(group, width)

    def _submit(self, group: list[RunJob], gpu_count: int) -> None:
        batch = new_batch(self.study_dir, self.study_id, [job.run.run_id for job in group])
        batch.write()
        longest = max(job.timeout_s for job in group) + self._longest_wait_s()
        args = sbatch_args(batch, self.settings, gpu_count, time_limit_min(self.settings, longest))
        try:
            array_id = commands.submit(args)
        except SlurmUnreachable:
            self._queued[:0] = group  # still to submit: the scheduler records them interrupted
            raise
        for index, job in enumerate(group):
            task = _Task(job, batch, index, array_id)
            self._tasks[job.run.run_id] = task
            self._new_ids[job.run.run_id] = task.job_id

    def _longest_wait_s(self) -> float:
        """What a node may wait before a run starts: the longer gap, and a cool-down."""
        gaps = max(self.execution.gap_between_experiments_s, self.execution.gap_between_cycles_s)
        cooling = COOLDOWN_MAX_WAIT_S if self.execution.cooldown_to_temp_c is not None else 0.0
        return gaps + cooling

    def _send_cancels(self) -> None:
        first, again = self._cancel_now, self._signal_again
        self._cancel_now, self._signal_again = [], []
        commands.cancel(first)
        commands.cancel(again, signal="TERM")

    # following ----------------------------------------------------------------------------------
    def _poll(self) -> None:
        try:
            states = {
                t.job_id: t for t in commands.queue(t.batch.name for t in self._tasks.values())
            }
            unlisted = {t.array_id for t in self._tasks.values() if t.job_id not in states}
            if unlisted:
                states.update({t.job_id: t for t in commands.accounting(unlisted)})
        except SlurmUnreachable as error:
            now = time.monotonic()
            self._unreachable_since = self._unreachable_since or now
            if now - self._unreachable_since > UNREACHABLE_LIMIT_S:
                raise SlurmUnreachable(
                    f"{error} (for {UNREACHABLE_LIMIT_S:.0f} s); the study's jobs go on",
                    hint="once Slurm answers, `llem status STUDY_DIR` or `llem run STUDY.yaml "
                    "--resume` collects them",
                ) from None
            return
        self._unreachable_since = None
        for run_id, task in list(self._tasks.items()):
            state = states.get(task.job_id)
            rest = states.get(task.array_id)  # the array's own record: tasks without their own
            if state is None and rest is not None and rest.ended:
                state = dataclasses.replace(rest, index=task.index)
            if state is None:
                continue
            self._observe(task, state)
            if state.ended:
                self._ended(run_id, task, state)

    def _observe(self, task: _Task, state: TaskState) -> None:
        task.state, task.node = state.state, state.node or task.node

    def _ended(self, run_id: str, task: _Task, state: TaskState) -> None:
        node_exit = read_node_exit(self.jobs, run_id)
        if (
            node_exit is None
            and state.state == "COMPLETED"
            and not _waited(task, NODE_EXIT_GRACE_S)
        ):
            return
        if node_exit is None and state.exit_code is None and state.state in CRASH_STATES:
            state = self._with_exit_code(state)
            if state.exit_code is None and not _waited(task, ACCOUNTING_GRACE_S):
                return
        concurrent = frozenset() if self.settings.exclusive else self._overlaps(run_id, node_exit)
        if node_exit is not None:
            interval = (run_id, node_exit.started_at, node_exit.finished_at)
            self._finished_on.setdefault(node_exit.node, []).append(interval)
        output = task.batch.output_file(task.index)
        self._done.append(
            job_done(
                task.job,
                state,
                node_exit,
                output=str(output),
                output_tail=log_tail(output, OUTPUT_TAIL_LINES),
                concurrent=concurrent,
            )
        )

    @staticmethod
    def _with_exit_code(state: TaskState) -> TaskState:
        """squeue has no exit code; accounting has, once slurmdbd has the job's end."""
        try:
            found = [t for t in commands.accounting([state.array_id]) if t.job_id == state.job_id]
        except SlurmUnreachable:
            return state
        return found[0] if found and found[0].exit_code is not None else state

    def _overlaps(self, run_id: str, node_exit: NodeExit | None) -> frozenset[str]:
        """Runs of this study on the same node whose time there overlapped this one's (on
        shared nodes, `exclusive: false`)."""
        if node_exit is None:
            return frozenset()
        start, end = node_exit.started_at, node_exit.finished_at
        found = {
            other
            for other, s, e in self._finished_on.get(node_exit.node, [])
            if s < end and e > start and other != run_id
        }
        found |= {
            other
            for other, t in self._tasks.items()
            if other != run_id and t.node == node_exit.node and t.state == "RUNNING"
        }
        return frozenset(found)


def _open(run: RunRecord) -> bool:
    """Submitted and not yet collected."""
    return run.status in OPEN_STATUSES and run.executor_job_id is not None


def _waited(task: _Task, seconds: float) -> bool:
    """Whether `seconds` have passed since the task was first seen ended without its record."""
    now = time.monotonic()
    task.exit_missing_since = task.exit_missing_since or now
    return now - task.exit_missing_since >= seconds
