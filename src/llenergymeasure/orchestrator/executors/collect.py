"""A finished job into the manifest: one rule for every executor and every caller.

The scheduler (as each job ends) and `llem status` (jobs that ended while no llem followed the
study) both call `Collector.record`. The rule, in order: a run the executor lost (node failure)
goes back to `pending` within the executor's attempts, then fails; the engine that ran it
stopped answering: `interrupted`, and the study stops; the engine refused the container:
failed; else the work folder and the exit decide (`outcome.classify`), except that a run that
did not complete while the disk under its work folder is full (`disk_full`) ended for the
host's reason, not its own: `interrupted` (it runs again on --resume), and llem stops with one
message (UserError). The caller holds the study's writer lock: the manifest has one writer.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from pathlib import Path
from typing import NoReturn

from llenergymeasure.contract.pruning import TrialPruned
from llenergymeasure.contract.workdir import WorkPaths, utc_now
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display, result_summary
from llenergymeasure.orchestrator.executors.base import Executor, JobDone
from llenergymeasure.orchestrator.executors.outcome import Classified, classify
from llenergymeasure.orchestrator.machine.container import KillReason
from llenergymeasure.orchestrator.machine.lifecycle import Refusal
from llenergymeasure.orchestrator.machine.pids import limit_reason
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import Outcome, RunRecord
from llenergymeasure.study.work_files import log_tail

LOG_TAIL_LINES = 20
# Less than this left to unprivileged writers on a work folder's filesystem: the disk is full
# (a container writes its progress, result and timeseries there).
DISK_FULL_BELOW_BYTES = 1 << 20


class Recorded(enum.Enum):
    DONE = "done"  # the run has its outcome
    REQUEUED = "requeued"  # back to pending: it runs again
    ENGINE_GONE = "engine_gone"  # interrupted with its engine; the study stops


def common_fields(done: JobDone, overlapped: set[str]) -> dict[str, object]:
    """The record's fields every ending sets: container, times, exit, placement."""
    exit_ = done.exit
    fields: dict[str, object] = {
        "container_id": exit_.container_id,
        "finished_at": utc_now(),
        "duration_s": round(exit_.finished_at - exit_.started_at, 3),
        "exit_code": exit_.exit_code,
        "concurrent_runs": sorted(overlapped),
    }
    if done.placement is not None:
        fields.update(
            node=done.placement.node,
            gpu_indices=done.placement.gpu_indices,
            gpu_uuids=done.placement.gpu_uuids,
            cpuset=done.placement.cpuset,
        )
    if done.host is not None:
        fields.update(
            foreign_gpu_processes=done.host.foreign_gpu_processes,
            gpu_off_default=done.host.gpu_off_default,
            gpu_settings=done.host.gpu_settings,
        )
    return fields


def verdict_of(done: JobDone, tail: str) -> Classified:
    """How the run ended, from its work folder and exit, with the executor's word added."""
    job, exit_ = done.job, done.exit
    if done.crash is not None:
        return Classified("failed", "crashed", "JobCrash", done.crash)
    refused = done.host.refused if done.host is not None else None
    if refused is not None:  # the machine did not start its container
        return Classified("failed", "failed", refused.error_type, refused.message)
    verdict = classify(
        job.workdir,
        exit_.exit_code,
        exit_.oom_killed,
        exit_.killed_for,
        job.timeout_s,
        job.stall_timeout_s,
        limit_reason(job.spec.pids_limit, exit_.forks_refused, tail),
        exit_.problem,
    )
    if done.detail is not None and verdict.status != "completed":
        verdict = dataclasses.replace(verdict, error=f"{verdict.error} ({done.detail})")
    return verdict


class Collector:
    """Writes ended runs into the manifest and says so on the display."""

    def __init__(
        self, manifest: Manifest, study_dir: Path, display: Display, executor: Executor
    ) -> None:
        self.manifest, self.study_dir = manifest, study_dir
        self.display, self.executor = display, executor
        self.engine_gone: tuple[str, str] | None = None  # (first run, message)

    def record(self, done: JobDone, overlapped: set[str]) -> Recorded:
        run_id, exit_ = done.job.run.run_id, done.exit
        if done.requeue is not None:
            return self._requeue(run_id, done.requeue)
        for note in done.host.notes if done.host is not None else []:
            self.display.note(f"  {run_id}: {note}")
        refused = done.host.refused if done.host is not None else None
        if refused is not None and refused.stops_study:
            self._machine_not_ready(run_id, refused, common_fields(done, overlapped))
        common = common_fields(done, overlapped)
        if self.engine_gone is not None:
            return self._engine_went_away(run_id, exit_.engine_error or "stopped", common)
        interrupted = exit_.killed_for is KillReason.INTERRUPT
        if exit_.engine_error is not None and not interrupted:
            lost = self.executor.engine_lost(done)
            if lost is not None:
                return self._engine_went_away(run_id, lost, common)
            self._engine_refused(done, exit_.engine_error, common)
            return Recorded.DONE
        tail = done.log_tail or log_tail(done.job.workdir / WorkPaths.CONTAINER_LOG, LOG_TAIL_LINES)
        verdict = verdict_of(done, tail)
        if verdict.status != "completed" and not interrupted:
            lost = self.executor.engine_lost(done)
            if lost is not None:
                return self._engine_went_away(run_id, lost, common)
            if disk_full(done.job.workdir):
                self._disk_full(run_id, done.job.workdir, common)
        completed = verdict.status == "completed"
        kept = verdict.result is not None  # a failed staged run keeps its earlier stages
        record = self.manifest.update_run(
            run_id,
            status=verdict.status,
            outcome=verdict.outcome,
            error_type=verdict.error_type,
            error=verdict.error,
            log_tail=None if completed else (tail or None),
            result_path=(
                str((done.job.workdir / WorkPaths.RESULT).relative_to(self.study_dir))
                if kept
                else None
            ),
            **common,
        )
        result = verdict.result
        summary = result_summary(result) if completed and result else verdict.error or ""
        self.display.run_finished(record, summary)
        return Recorded.DONE

    def failed(self, run_id: str, outcome: Outcome, error_type: str, error: str) -> None:
        """A run that ends without a container outcome to classify."""
        record = self.manifest.update_run(
            run_id,
            status="failed",
            outcome=outcome,
            error_type=error_type,
            error=error,
            finished_at=utc_now(),
        )
        self.display.run_finished(record, error)

    def pruned(self, done: JobDone, why: str, overlapped: set[str]) -> None:
        """A search trial its pruner stopped: failed as a pruned trial, whatever its container
        did once asked to stop (its figures were the pruner's, never a measurement)."""
        record = self.manifest.update_run(
            done.job.run.run_id,
            status="failed",
            outcome="failed",
            error_type=TrialPruned.__name__,
            error=why,
            **common_fields(done, overlapped),
        )
        self.display.run_finished(record, why)

    def stopped_with_llem(self, done: JobDone, why: str, overlapped: set[str]) -> None:
        """A run stopped because llem itself stopped (a full disk, a bug)."""
        self.manifest.update_run(
            done.job.run.run_id,
            status="interrupted",
            outcome="interrupted",
            error_type="LlemStopped",
            error=f"stopped because llem stopped ({why})",
            **common_fields(done, overlapped),
        )

    def finish_study(self, learned: bool = False) -> list[RunRecord]:
        """Every run has its outcome: the study's status and its outputs; the runs that did
        not complete. `learned`: failed runs are findings (a search), the study completed."""
        failed = [r for r in self.manifest.record.runs.values() if r.status != "completed"]
        self.manifest.set_status("failed" if failed and not learned else "completed")
        from llenergymeasure.results.export import write_study_outputs  # pandas: only at the end

        written = write_study_outputs(self.study_dir)
        total = len(self.manifest.record.runs)
        self.display.note(
            f"done: {total - len(failed)} completed, {len(failed)} failed; results in "
            f"{self.study_dir} ({', '.join(path.name for path in written)})"
        )
        return failed

    def _requeue(self, run_id: str, why: str) -> Recorded:
        """A run the executor lost runs again, within the executor's attempts; after the last
        it has failed."""
        attempts = self.manifest.record.runs[run_id].attempts
        limit = self.executor.max_attempts
        if attempts >= limit:
            self.failed(
                run_id,
                "crashed",
                "NodeFailure",
                f"{why}; not started again after {attempts} attempt(s) (max_attempts: {limit})",
            )
            return Recorded.DONE
        self.manifest.update_run(
            run_id,
            status="pending",
            executor_job_id=None,
            error_type="Requeued",
            error=f"{why}; to run again (attempt {attempts + 1} of {limit})",
        )
        self.display.note(f"  {run_id}: {why}; submitting it again")
        return Recorded.REQUEUED

    def _engine_refused(self, done: JobDone, message: str, common: dict[str, object]) -> None:
        where = f" on {done.placement.node}" if done.placement is not None else ""
        record = self.manifest.update_run(
            done.job.run.run_id,
            status="failed",
            outcome="crashed",
            error_type="EngineError",
            error=f"the container engine{where} refused the container: {message}",
            **common,
        )
        self.display.run_finished(record, record.error or "")

    def _machine_not_ready(
        self, run_id: str, refused: Refusal, common: dict[str, object]
    ) -> NoReturn:
        """The machine refused the run for a cause of its own (an unreadable GPU ledger): it
        says nothing of the run's configuration (a search must not learn it)."""
        then = "`llem run STUDY.yaml --resume` finishes the study"
        self._stop_here(
            run_id,
            common,
            (refused.error_type, refused.message),
            UserError(
                f"llem stopped before run {run_id}: {refused.message}",
                hint=f"{refused.hint}; then {then}" if refused.hint else f"fix that, then {then}",
            ),
        )

    def _disk_full(self, run_id: str, workdir: Path, common: dict[str, object]) -> NoReturn:
        """The run ended without its result on a full disk: the host's cause, not the run's."""
        self._stop_here(
            run_id,
            common,
            ("DiskFull", f"the disk under {workdir} was full"),
            UserError(
                f"llem stopped: No space left on device ({workdir}); run {run_id} ended without "
                f"its result and runs again on --resume; the completed runs are kept in "
                f"{self.study_dir}",
                hint="free disk space, then `llem run STUDY.yaml --resume` finishes the study",
            ),
        )

    def _stop_here(
        self,
        run_id: str,
        common: dict[str, object],
        error: tuple[str, str],
        stop: UserError,
    ) -> NoReturn:
        """The run `interrupted` with `error` (type, message), so --resume runs it again; then
        llem stops with `stop`."""
        error_type, message = error
        self.manifest.update_run(
            run_id,
            status="interrupted",
            outcome="interrupted",
            error_type=error_type,
            error=message,
            **common,
        )
        raise stop

    def _engine_went_away(self, run_id: str, message: str, common: dict[str, object]) -> Recorded:
        """The engine stopped answering: the run is `interrupted` (it runs again on --resume);
        every other run in flight is killed and recorded alike; then the study stops."""
        self.manifest.update_run(
            run_id,
            status="interrupted",
            outcome="interrupted",
            error_type="EngineGone",
            error=f"the Docker engine stopped answering: {message}",
            **common,
        )
        if self.engine_gone is None:
            self.engine_gone = (run_id, message)
            for other in self.executor.in_flight:
                self.executor.cancel(other, force=True)
        return Recorded.ENGINE_GONE


def disk_full(folder: Path) -> bool:
    """The filesystem of `folder` has less than DISK_FULL_BELOW_BYTES left to unprivileged
    writers (a container runs as one); False where it cannot be read."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < DISK_FULL_BELOW_BYTES
