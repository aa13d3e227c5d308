"""The study runner: schedules planned runs onto slots, hands them to an executor, and is the
manifest's only writer.

Order: the planned order. The next run starts as soon as a slot for it is free (k free GPUs of
the pool for gpu_count k, or a free CPU group) and that slot's gap has passed: gaps and
cool-down belong to the slot's GPUs (or CPUs), so a GPU's gap starts when its own previous run
ends. With `max_parallel: 1` this is the one-at-a-time loop of a single slot.

Integrity with several runs in flight: each run's GPUs are its own (physical UUIDs end to end);
a run whose container overlapped another's records which (manifest `concurrent_runs`, result
warning `concurrent_runs`), and its host-wide figures (RAPL) are null with that reason.

Stops: the first Ctrl+C/SIGTERM asks every running container to stop (SIGTERM, 2 s grace,
SIGKILL) and starts nothing more; a second kills them at once; during a gap it stops at once.
An engine that stops answering ends the study with one message once every run in flight is
recorded `interrupted`.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from llenergymeasure.contract.workdir import (
    CONFIG_FILE,
    utc_now,
)
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import collect, layout, run_spec
from llenergymeasure.orchestrator.container import KillReason
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.engine import engine_answers
from llenergymeasure.orchestrator.executor import Executor, JobDone, RunJob
from llenergymeasure.orchestrator.host_gpus import (
    COOLDOWN_MAX_WAIT_S,
    COOLDOWN_POLL_S,
    compute_processes,
    temperatures,
)
from llenergymeasure.orchestrator.preflight import Preflight, RunOptions
from llenergymeasure.orchestrator.slots import Slot, SlotPool
from llenergymeasure.orchestrator.stop import EXIT_INTERRUPTED, StopState
from llenergymeasure.orchestrator.study_folder import StudyFolder, runs_to_do
from llenergymeasure.study import work_files
from llenergymeasure.study.estimate import estimate_run
from llenergymeasure.study.manifest_models import Outcome
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.order import gap_before

TICK_S = 0.05  # how often the runner looks at stops, finished runs and slots
# After an unexpected error, how long llem waits for the runs in flight to stop (local: the
# 2 s grace of a SIGTERM; Slurm: the cancelled jobs to end).
ABORT_WAIT_S = 60.0


@dataclass
class _Flight:
    job: RunJob
    overlapped: set[str] = field(default_factory=set)


@dataclass
class _Freed:
    """When a resource (a GPU, a CPU group) was last given back, and by which run."""

    at: float  # time.monotonic()
    run: PlannedRun


@dataclass
class _Waiting:
    """The head of the queue while it waits for its gap or cool-down."""

    run_id: str
    gap_shown: bool = False
    skipped: bool = False
    cooldown_since: float | None = None
    next_cooldown_check: float = 0.0


class StudyRunner:
    def __init__(
        self,
        pre: Preflight,
        folder: StudyFolder,
        executor: Executor,
        display: Display,
        stop: StopState,
        options: RunOptions,
    ) -> None:
        self.pre, self.manifest, self.plan = pre, folder.manifest, folder.plan
        self.executor, self.display, self.stop = executor, display, stop
        self.retry_failed, self.detach = options.retry_failed, options.detach
        execution = pre.study.execution
        self.execution = execution
        self.study_dir = folder.path
        self.engine = execution.container_engine
        self.pool = (
            SlotPool.unbounded()
            if executor.schedules_itself
            else SlotPool(execution.gpu_ids, execution.max_parallel, pre.cpu_groups)
        )
        self.ctx = run_spec.StudyContext(
            study_id=self.manifest.record.study_id,
            study_name=pre.study.name,
            study_file_dir=pre.planned.source_dir,
            offline=pre.study.offline,
            user=pre.user,
            limits=pre.limits,
            gpu_uuids=pre.gpu_uuids,
            max_parallel=execution.max_parallel,
            mem_limit=options.mem_limit,
            hub=pre.hub,
        )
        run_spec.prepare_caches(self.ctx, {run.config.backend for run in self.plan})
        self.flights: dict[str, _Flight] = {}
        self.freed: dict[str, _Freed] = {}
        self.waiting: _Waiting | None = None
        self.stops_sent = 0
        self.engine_gone: tuple[str, str] | None = None  # (first run, message)
        self.position = 0
        self.todo: deque[PlannedRun] = deque()
        self.recorder = collect.Recorder(self.manifest, self.study_dir, display)

    # the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Run every run still to do; the exit code: 0 all completed, 1 some did not, 130
        interrupted. An engine that went away raises UserError (exit 2)."""
        todo = self.todo = deque(runs_to_do(self.manifest, self.plan, self.retry_failed))
        total = len(self.plan)
        self.position = total - len(todo)
        self.display.note(f"study {self.study_dir} : {len(todo)} of {total} runs to do")
        self._reattach(todo)
        self.display.start(total, self.position)
        try:
            while todo or self.flights:
                self._pass_stops_on()
                if todo and not self.stop.requested and self.engine_gone is None:
                    self._start_ready(todo)
                for done in self.executor.wait(TICK_S if self.flights else 0):
                    self._collect(done)
                self._record_submitted()
                self.display.refresh()
                if self.detach and not todo and self.executor.all_submitted:
                    return self._detached()
                if not self.flights and (self.stop.requested or self.engine_gone):
                    break
                if not self.flights and todo:
                    self.stop.sleep(TICK_S)
            self._record_submitted()
        except UserError:
            if not self.executor.schedules_itself:  # Slurm's jobs go on by design (README)
                self._abort_flights("a problem llem reports")
            raise
        except Exception as error:
            self._abort_flights(f"{type(error).__name__}: {error}")
            if isinstance(error, OSError):
                raise UserError(
                    f"llem stopped: {error.strerror or error} ({error.filename or 'no file'}); "
                    f"the runs in flight were stopped and the completed ones are kept in "
                    f"{self.study_dir}",
                    hint="fix that (e.g. free disk space), then `llem run "
                    f"{self.pre.planned.path} --resume` finishes the study",
                ) from error
            raise
        finally:
            self.display.stop()
        if self.engine_gone is not None:
            self._engine_gone_error()
        if self.stop.requested:
            self.manifest.set_status("interrupted")
            when = " during a gap" if self.waiting is not None else ""
            self.display.note(
                f"interrupted{when}; resume with `llem run {self.pre.planned.path} --resume`"
            )
            return EXIT_INTERRUPTED
        return self._finish(total)

    def _abort_flights(self, why: str) -> None:
        """The loop failed (a full disk under the manifest, a bug): before llem exits, every
        run in flight is stopped as by Ctrl+C (SIGTERM, grace, SIGKILL; each container's own
        watch still enforces its timeout meanwhile) and, where the manifest still takes it,
        recorded `interrupted`."""
        if not self.flights:
            return
        self.display.note(f"llem stopped ({why}); stopping {len(self.flights)} run(s) in flight")
        for run_id in self.executor.in_flight:
            self.executor.cancel(run_id)
        deadline = time.monotonic() + ABORT_WAIT_S
        while self.executor.in_flight and time.monotonic() < deadline:
            for done in self.executor.wait(TICK_S):
                self.flights.pop(done.job.run.run_id, None)
                with contextlib.suppress(Exception):  # the manifest may be what failed
                    self.manifest.update_run(
                        done.job.run.run_id,
                        status="interrupted",
                        outcome="interrupted",
                        error_type="LlemStopped",
                        error=f"stopped because llem stopped ({why})",
                        **collect.common_fields(done, set()),
                    )

    def _reattach(self, todo: deque[PlannedRun]) -> None:
        """Jobs an earlier llem left with the executor (Slurm) are followed, not started again."""
        for job in self.executor.reattach(list(todo)):
            todo.remove(job.run)
            self.flights[job.run.run_id] = _Flight(job)
            self.pool.take(job.run.config.gpu_count)
            self.position += 1
            self.display.run_started(job.run, self.position, len(self.plan), job.workdir, True)
        if self.flights:
            self.display.note(f"following {len(self.flights)} run(s) submitted earlier")

    def _record_submitted(self) -> None:
        for run_id, job_id in self.executor.submitted().items():
            self.manifest.update_run(run_id, executor_job_id=job_id)

    def _detached(self) -> int:
        self.display.stop()
        self.display.note(
            f"{len(self.flights)} run(s) submitted; this llem stops following them. "
            f"`llem status {self.study_dir}` collects what ended; "
            f"`llem run {self.pre.planned.path} --resume` follows them again"
        )
        return 0

    def _finish(self, total: int) -> int:
        failed = [r for r in self.manifest.record.runs.values() if r.status != "completed"]
        self.manifest.set_status("failed" if failed else "completed")
        from llenergymeasure.results.export import write_study_outputs  # pandas: only at the end

        written = write_study_outputs(self.study_dir)
        self.display.note(
            f"done: {total - len(failed)} completed, {len(failed)} failed; results in "
            f"{self.study_dir} ({', '.join(path.name for path in written)})"
        )
        return 1 if failed else 0

    def _pass_stops_on(self) -> None:
        """Each Ctrl+C/SIGTERM goes to every run in flight (first: stop, second: kill)."""
        while self.stops_sent < min(self.stop.count, 2):
            self.stops_sent += 1
            for run_id in self.executor.in_flight:
                self.executor.cancel(run_id)

    # starting -----------------------------------------------------------------------------------
    def _start_ready(self, todo: deque[PlannedRun]) -> None:
        """Start queued runs, in order, while the head's slot is free and its gap has passed."""
        while todo and not self.stop.requested:
            run = todo[0]
            if not self.pool.fits(run.config.gpu_count):
                return
            slot = self.pool.peek(run.config.gpu_count)
            if not self._slot_ready(run, slot):
                return
            todo.popleft()
            self.waiting = None
            self._launch(run, self.pool.take(run.config.gpu_count))

    def _slot_ready(self, run: PlannedRun, slot: Slot) -> bool:
        """The slot's gap has passed (or was skipped) and its GPUs are cool enough."""
        if self.waiting is None or self.waiting.run_id != run.run_id:
            self.waiting = _Waiting(run.run_id)
        waiting = self.waiting
        left, reason = self._gap_left(run, slot)
        if left > 0 and not waiting.skipped:
            if not waiting.gap_shown:
                waiting.gap_shown = True
                self.display.gap(left, reason)
            else:
                self.display.gap_left(left)
            waiting.skipped = _enter_pressed()
            return waiting.skipped
        return self._cool_enough(slot, waiting)

    def _gap_left(self, run: PlannedRun, slot: Slot) -> tuple[float, str]:
        """Seconds until the gap after the slot's previous run(s) has passed, and why."""
        now = time.monotonic()
        left, reason = 0.0, ""
        for resource in slot.resources:
            freed = self.freed.get(resource)
            if freed is None:
                continue
            gap = gap_before(freed.run, run, self.execution)
            if freed.at + gap - now > left:
                left = freed.at + gap - now
                cycles = freed.run.cycle != run.cycle
                reason = "between cycles" if cycles else "between experiments"
        return left, reason

    def _cool_enough(self, slot: Slot, waiting: _Waiting) -> bool:
        target = self.execution.cooldown_to_temp_c
        if target is None or not slot.gpus:
            return True
        now = time.monotonic()
        if now < waiting.next_cooldown_check:
            return False
        waiting.next_cooldown_check = now + COOLDOWN_POLL_S
        temps = temperatures(list(slot.gpus))
        if isinstance(temps, str):
            self.display.note(f"  cool-down skipped: {temps}")
            return True
        hottest = max(temps.values())
        if hottest <= target:
            return True
        if waiting.cooldown_since is None:
            waiting.cooldown_since = now
        elif now - waiting.cooldown_since > COOLDOWN_MAX_WAIT_S:
            self.display.note(
                f"  cool-down: still above {target:.0f} °C after {COOLDOWN_MAX_WAIT_S:.0f} s; "
                "going on"
            )
            return True
        self.display.note(f"  cool-down: GPU at {hottest:.0f} °C, waiting for {target:.0f} °C")
        return False

    def _launch(self, run: PlannedRun, slot: Slot) -> None:
        self.position += 1
        workdir = layout.work_dir(self.study_dir, run.run_id)
        if workdir.exists():  # an earlier attempt: start clean so no stale file is mistaken
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        self.ctx.user.hand_over(workdir)
        image = self.pre.images[run.config.backend]
        request, spec = run_spec.build(run, self.ctx, image, workdir, slot)
        work_files.write(workdir, CONFIG_FILE, request)
        foreign = self._foreign_processes(slot)
        queued = self.executor.schedules_itself  # the executor's scheduler places it later
        previous = self.manifest.record.runs[run.run_id]
        self.manifest.update_run(
            run.run_id,
            status="running",
            outcome=None,
            attempts=previous.attempts + 1,
            image_ref=image.ref,
            image_id=image.id,
            image_digest=image.digest,
            container_id=None,
            started_at=utc_now(),
            finished_at=None,
            duration_s=None,
            exit_code=None,
            error_type=None,
            error=None,
            log_tail=None,
            result_path=None,
            gpu_indices=list(slot.gpus),
            gpu_uuids=request.context.gpu_uuids,
            cpuset=slot.cpuset,
            concurrent_runs=[],
            foreign_gpu_processes=foreign,
            node=None if queued else os.uname().nodename,
            executor_job_id=None,
        )
        self.display.run_started(run, self.position, len(self.plan), workdir, queued)
        if foreign and self.execution.foreign_gpu_processes == "error":
            self.pool.give_back(slot)
            return self._failed(
                run,
                "failed",
                "ForeignGpuProcesses",
                f"process(es) {foreign} not of this study were on GPU(s) {list(slot.gpus)}; not "
                "started (execution.foreign_gpu_processes: error)",
            )
        timeout_s = self.execution.timeout_for(estimate_run(run.config).total_s)
        job = RunJob(
            run, slot, workdir, spec, timeout_s, self.execution.stall_timeout_s, self.ctx, image
        )
        flight = _Flight(job, overlapped=set(self.flights))
        for other in self.flights.values():
            other.overlapped.add(run.run_id)
        self.flights[run.run_id] = flight
        self.executor.start(job)

    def _foreign_processes(self, slot: Slot) -> list[int]:
        """Host PIDs computing on the slot's GPUs before its container starts: none of this
        study's (the slot is free), so foreign. [] where NVML cannot say."""
        if not slot.gpus:
            return []
        found = compute_processes(list(slot.gpus))
        return [] if isinstance(found, str) else sorted({p for ps in found.values() for p in ps})

    # collecting -------------------------------------------------------------------------------
    def _collect(self, done: JobDone) -> None:
        job, exit_ = done.job, done.exit
        run = job.run
        flight = self.flights.pop(run.run_id)
        self.pool.give_back(job.slot)
        now = time.monotonic()
        for resource in job.slot.resources:
            self.freed[resource] = _Freed(now, run)
        if done.requeue is not None:
            return self._requeue(run, done.requeue)
        overlapped = set(done.concurrent) if done.concurrent is not None else flight.overlapped
        common = collect.common_fields(done, overlapped)
        interrupted = exit_.killed_for is KillReason.INTERRUPT
        if self.executor.schedules_itself:
            engine_error = exit_.engine_error
        elif self.engine_gone is not None:
            return self._engine_went_away(run, exit_.engine_error or "stopped", common)
        else:
            engine_error = None if interrupted else exit_.engine_error
            if engine_error is not None and not engine_answers(self.engine):
                return self._engine_went_away(run, engine_error, common)
        if engine_error is not None:
            return self.recorder.engine_refused(done, engine_error, common)
        log_tail = collect.log_tail_of(done)
        verdict = collect.verdict_of(done, log_tail)
        # A daemon shutting down closes its socket, then stops its containers: the run looks
        # failed (exit code, maybe an error.json) although only the engine went away.
        if (
            verdict.status != "completed"
            and not interrupted
            and not self.executor.schedules_itself
            and not engine_answers(self.engine)
        ):
            message = f"its container stopped with exit code {exit_.exit_code}"
            return self._engine_went_away(run, message, common)
        self.recorder.finished(done, verdict, log_tail, common, overlapped)
        return None

    def _failed(self, run: PlannedRun, outcome: Outcome, error_type: str, error: str) -> None:
        """A run that ends here, without a container outcome to classify."""
        record = self.manifest.update_run(
            run.run_id,
            status="failed",
            outcome=outcome,
            error_type=error_type,
            error=error,
            finished_at=utc_now(),
        )
        self.display.run_finished(record, error)

    def _requeue(self, run: PlannedRun, why: str) -> None:
        """A run the executor lost (node failure) goes back to the head of the queue, within
        execution.slurm.max_attempts; after the last it has failed."""
        attempts = self.manifest.record.runs[run.run_id].attempts
        limit = self.execution.slurm.max_attempts
        if attempts >= limit:
            return self._failed(
                run,
                "crashed",
                "NodeFailure",
                f"{why}; not submitted again after {attempts} attempt(s) "
                f"(execution.slurm.max_attempts: {limit})",
            )
        self.manifest.update_run(
            run.run_id,
            status="pending",
            error_type="Requeued",
            error=f"{why}; submitted again (attempt {attempts + 1} of {limit})",
        )
        self.display.note(f"  {run.run_id}: {why}; submitting it again")
        self.position -= 1  # it counts once, when it starts again
        self.todo.appendleft(run)

    def _engine_went_away(self, run: PlannedRun, message: str, common: dict[str, object]) -> None:
        """The engine stopped answering: the run is `interrupted` (it runs again on --resume);
        every other run in flight is killed and recorded alike; then the study stops."""
        self.manifest.update_run(
            run.run_id,
            status="interrupted",
            outcome="interrupted",
            error_type="EngineGone",
            error=f"the Docker engine stopped answering: {message}",
            **common,
        )
        if self.engine_gone is None:
            self.engine_gone = (run.run_id, message)
            for run_id in self.executor.in_flight:
                self.executor.cancel(run_id)
                self.executor.cancel(run_id)

    def _engine_gone_error(self) -> None:
        assert self.engine_gone is not None
        run_id, message = self.engine_gone
        self.manifest.set_status("failed")
        completed = sum(r.status == "completed" for r in self.manifest.record.runs.values())
        raise UserError(
            f"the Docker engine stopped answering during run {run_id} ({message}); "
            f"{completed} runs completed are kept in {self.study_dir}",
            hint="start the engine again, then `llem run STUDY.yaml --resume` finishes the study",
        )


def _enter_pressed() -> bool:
    """On a terminal, Enter skips the gap being waited out."""
    if not sys.stdin.isatty():
        return False
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready:
        sys.stdin.readline()
        return True
    return False
