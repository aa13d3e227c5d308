"""The study scheduler: places planned runs onto an executor's slots, hands them to it, and is
the manifest's only writer (through the collector).

Order: the planned order. The next run starts as soon as a slot for it is free (k free GPUs of
the pool for gpu_count k, or a free CPU group) and the executor's gate lets it (the slot's gap
and cool-down: `gate.py`). With `max_parallel: 1` this is the one-at-a-time loop of a single
slot. An executor that places runs itself (a cluster) gives an unbounded pool and an open gate.

It never touches a GPU: what the machine under a run does (leftovers, foreign processes, GPU
settings set and put back) is the executor's, through the one per-run host lifecycle
(`machine/lifecycle.py`), and comes back with the run's ending for the manifest.

Integrity with several runs in flight: each run's GPUs are its own (physical UUIDs end to end);
a run whose container overlapped another's records which (manifest `concurrent_runs`, merged
into its result as the warning `concurrent_runs` at load), and its host-wide figures (RAPL) are
null with that reason.

Stops: the first Ctrl+C/SIGTERM asks every running container to stop (SIGTERM, 2 s grace,
SIGKILL) and starts nothing more; a second kills them at once; during a gap it stops at once.
An engine that stops answering ends the study with one message once every run in flight is
recorded `interrupted`.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field

from llenergymeasure.contract.workdir import WorkPaths, utc_now
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import Executor, JobDone, RunJob
from llenergymeasure.orchestrator.executors.collect import Collector, Recorded
from llenergymeasure.orchestrator.machine import run_spec
from llenergymeasure.orchestrator.machine.lifecycle import HostRun
from llenergymeasure.orchestrator.machine.slots import Slot
from llenergymeasure.orchestrator.machine.stop import EXIT_INTERRUPTED, StopState
from llenergymeasure.orchestrator.schedule.baselines import offered_baseline
from llenergymeasure.orchestrator.schedule.preflight import Preflight, RunOptions
from llenergymeasure.orchestrator.schedule.sources import RunSource
from llenergymeasure.orchestrator.schedule.study_folder import StudyFolder
from llenergymeasure.study import work_files
from llenergymeasure.study.estimate import estimate_run
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.untrusted import new_private_folder

TICK_S = 0.05  # how often the scheduler looks at stops, finished runs and slots
# After an unexpected error, how long llem waits for the runs in flight to stop (local: the
# 2 s grace of a SIGTERM; a cluster: the cancelled jobs to end).
ABORT_WAIT_S = 60.0


@dataclass
class Flight:
    job: RunJob
    overlapped: set[str] = field(default_factory=set)


class StudyScheduler:
    def __init__(
        self,
        pre: Preflight,
        folder: StudyFolder,
        executor: Executor,
        display: Display,
        stop: StopState,
        options: RunOptions,
        source: RunSource,
    ) -> None:
        self.pre, self.manifest, self.source = pre, folder.manifest, source
        self.executor, self.display, self.stop = executor, display, stop
        self.options = options
        self.execution = pre.study.execution
        self.study_dir = folder.path
        self.pool = executor.slot_pool()
        self.gate = executor.gate()
        self.ctx = run_spec.StudyContext(
            study_id=self.manifest.record.study_id,
            study_name=pre.study.name,
            study_file_dir=pre.planned.source_dir,
            offline=pre.study.offline,
            user=pre.user,
            limits=pre.limits,
            gpu_uuids=pre.gpu_uuids,
            max_parallel=self.execution.max_parallel,
            mem_limit=options.mem_limit,
            hub=pre.hub,
        )
        run_spec.prepare_caches(self.ctx, {run.config.backend for run in pre.planned.reach})
        self.flights: dict[str, Flight] = {}
        self.stops_sent = 0
        self.pruning: dict[str, str] = {}  # run id -> why its search's pruner stopped it
        self.position = 0
        self.collector = Collector(self.manifest, self.study_dir, display, executor)

    # the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Run every run still to do; the exit code: 0 all completed, 1 some did not, 130
        interrupted. An engine that went away raises UserError (exit 2)."""
        source = self.source
        queued = len(source.queued)
        self.position = len(self.manifest.record.runs) - queued
        self.display.note(f"study {self.study_dir} : {queued} of {source.total} runs to do")
        if self.options.no_gaps:
            self.display.note("no gaps and no cool-down between runs (--no-gaps)")
        self._reattach()
        self.display.start(source.total, self.position)
        try:
            while source.more or self.flights:
                self._pass_stops_on()
                if not self.stop.requested and self.collector.engine_gone is None:
                    self._start_ready()
                ended = self.executor.wait(TICK_S if self.flights else 0)
                for done in ended:
                    self._collect(done)
                self._prune()
                self._record_submitted()
                self.display.refresh()
                if self.options.detach and not source.more and self.executor.all_submitted:
                    return self._detached()
                if not self.flights and (self.stop.requested or self.collector.engine_gone):
                    break
                if not self.flights and source.more and not ended:  # a gap or cool-down
                    self.stop.sleep(TICK_S)
            self._record_submitted()
        except UserError:
            if not self.executor.jobs_outlive_llem:
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
        if self.collector.engine_gone is not None:
            self._engine_gone_error()
        if self.stop.requested:
            self.manifest.set_status("interrupted")
            when = " during a gap" if self.gate.waiting is not None else ""
            self.display.note(
                f"interrupted{when}; resume with `llem run {self.pre.planned.path} --resume`"
            )
            return EXIT_INTERRUPTED
        return source.exit_code(self.collector.finish_study(learned=source.learns_from_failures))

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
                    self.collector.stopped_with_llem(done, why, set())

    def _reattach(self) -> None:
        """Jobs an earlier llem left with the executor are followed, not started again."""
        for job in self.executor.reattach(list(self.source.queued)):
            self.source.following(job.run)
            self.flights[job.run.run_id] = Flight(job)
            self.pool.take(job.run.config.gpu_count)
            self.position += 1
            total = self.source.total
            self.display.run_started(job.run, self.position, total, job.workdir, True)
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

    def _pass_stops_on(self) -> None:
        """Each Ctrl+C/SIGTERM goes to every run in flight (first: stop, second: kill)."""
        while self.stops_sent < min(self.stop.count, 2):
            self.stops_sent += 1
            for run_id in self.executor.in_flight:
                self.executor.cancel(run_id, force=self.stops_sent == 2)

    def _prune(self) -> None:
        """Trials the search's pruner stops: asked to stop as by Ctrl+C (SIGTERM, grace,
        SIGKILL), recorded pruned when they end."""
        if self.stop.requested:
            return
        watched = [run_id for run_id in self.flights if run_id not in self.pruning]
        for run_id, why in self.source.prunes(watched).items():
            self.pruning[run_id] = why
            self.executor.cancel(run_id)
            self.display.note(f"  {run_id}: {why}; stopping it")

    # starting -----------------------------------------------------------------------------------
    def _start_ready(self) -> None:
        """Start queued runs, in order, while the head's slot is free and its gate is open (a
        search asks for its next trial only then)."""
        while not self.stop.requested and (run := self.source.head()) is not None:
            if not self.pool.fits(run.config.gpu_count):
                return
            slot = self.pool.peek(run.config.gpu_count)
            if not self.gate.ready(run.run_id, run.cycle, slot.resources, slot.gpus):
                return
            self.source.take()
            self._launch(run, self.pool.take(run.config.gpu_count))

    def _launch(self, run: PlannedRun, slot: Slot) -> None:
        self.position += 1
        paths = StudyPaths(self.study_dir)
        workdir = paths.work(run.run_id)
        if workdir.exists():  # an earlier attempt: start clean so no stale file is mistaken
            shutil.rmtree(workdir)
        paths.own_folder(StudyPaths.EXPERIMENTS)
        new_private_folder(workdir)  # 0700 whatever the umask; then the container user's
        self.ctx.user.hand_over(workdir)
        image = self.pre.images[run.config.backend]
        timeout_s = self.execution.timeout_for(estimate_run(run.config).total_s)
        # the container's own deadline follows it: none outlives its timeout, even unwatched
        request, spec = run_spec.build(run, self.ctx, image, workdir, slot, timeout_s)
        node = self.executor.node_at_start()
        offered = offered_baseline(self.study_dir, self.manifest.record, request, node)
        if offered is not None:
            request = request.with_context(reused_baseline=offered)
        prune = self.source.prune_bounds(run)
        if prune:
            request = request.with_context(prune=prune)
        work_files.write(workdir, WorkPaths.CONFIG, request)
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
            foreign_gpu_processes=[],
            gpu_settings=[],
            node=node,
            executor_job_id=None,
            no_gaps=self.options.no_gaps,
        )
        self.display.run_started(run, self.position, self.source.total, workdir, node is None)
        host = HostRun(
            study_id=self.ctx.study_id,
            run_id=run.run_id,
            gpus=slot.gpus,
            settings=run.config.gpu,
            foreign_gpu_processes=self.execution.foreign_gpu_processes,
            gpu_off_default=self.execution.gpu_off_default,
        )
        job = RunJob(
            run,
            slot,
            workdir,
            spec,
            timeout_s,
            self.execution.stall_timeout_s,
            host,
            self.ctx,
            image,
        )
        flight = Flight(job, overlapped=set(self.flights))
        for other in self.flights.values():
            other.overlapped.add(run.run_id)
        self.flights[run.run_id] = flight
        self.executor.start(job)

    # collecting -------------------------------------------------------------------------------
    def _collect(self, done: JobDone) -> None:
        run, slot = done.job.run, done.job.slot
        flight = self.flights.pop(run.run_id)
        self.pool.give_back(slot)
        self.gate.give_back(slot.resources, run.cycle)
        overlapped = set(done.concurrent) if done.concurrent is not None else flight.overlapped
        pruned = self.pruning.pop(run.run_id, None)
        if pruned is not None:
            self.collector.pruned(done, pruned, overlapped)
            self.source.ended(run.run_id)
            return
        recorded = self.collector.record(done, overlapped)
        if recorded is Recorded.REQUEUED:
            self.position -= 1  # it counts once, when it starts again
            self.source.put_back(run)
        elif recorded is Recorded.DONE:
            self.source.ended(run.run_id)

    def _engine_gone_error(self) -> None:
        assert self.collector.engine_gone is not None
        run_id, message = self.collector.engine_gone
        self.manifest.set_status("failed")
        completed = sum(r.status == "completed" for r in self.manifest.record.runs.values())
        raise UserError(
            f"the Docker engine stopped answering during run {run_id} ({message}); "
            f"{completed} runs completed are kept in {self.study_dir}",
            hint="start the engine again, then `llem run STUDY.yaml --resume` finishes the study",
        )
