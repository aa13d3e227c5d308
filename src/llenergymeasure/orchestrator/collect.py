"""A finished job into the manifest: its verdict, what only the host saw, its record.

Shared by the study runner (as each job ends) and `llem status` (Slurm jobs that ended while no
llem followed them). The caller holds the study's writer lock: the manifest has one writer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import (
    CONTAINER_LOG_FILE,
    RESULT_FILE,
    utc_now,
)
from llenergymeasure.orchestrator.display import Display, result_summary
from llenergymeasure.orchestrator.executor import JobDone
from llenergymeasure.orchestrator.outcome import Classified, classify
from llenergymeasure.orchestrator.pids import limit_reason
from llenergymeasure.study import work_files
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import RunRecord
from llenergymeasure.study.work_files import log_tail

LOG_TAIL_LINES = 20


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
    return fields


def log_tail_of(done: JobDone) -> str:
    return done.log_tail or log_tail(done.job.workdir / CONTAINER_LOG_FILE, LOG_TAIL_LINES)


def verdict_of(done: JobDone, log_tail: str) -> Classified:
    """How the run ended, from its work folder and exit, with the executor's word added."""
    job, exit_ = done.job, done.exit
    if done.crash is not None:
        return Classified("failed", "crashed", "JobCrash", done.crash)
    verdict = classify(
        job.workdir,
        exit_.exit_code,
        exit_.oom_killed,
        exit_.killed_for,
        job.timeout_s,
        job.stall_timeout_s,
        limit_reason(job.spec.pids_limit, exit_.forks_refused, log_tail),
        exit_.problem,
    )
    if done.detail is not None and verdict.status != "completed":
        verdict = dataclasses.replace(verdict, error=f"{verdict.error} ({done.detail})")
    return verdict


class Recorder:
    """Writes finished runs into the manifest and says so on the display."""

    def __init__(self, manifest: Manifest, study_dir: Path, display: Display) -> None:
        self.manifest, self.study_dir, self.display = manifest, study_dir, display

    def engine_refused(self, done: JobDone, message: str, common: dict[str, object]) -> None:
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

    def finished(
        self,
        done: JobDone,
        verdict: Classified,
        log_tail: str,
        common: dict[str, object],
        overlapped: set[str],
    ) -> RunRecord:
        job = done.job
        result = self._with_host_findings(verdict, done, overlapped)
        completed = verdict.status == "completed"
        record = self.manifest.update_run(
            job.run.run_id,
            status=verdict.status,
            outcome=verdict.outcome,
            error_type=verdict.error_type,
            error=verdict.error,
            log_tail=None if completed else (log_tail or None),
            result_path=(
                str((job.workdir / RESULT_FILE).relative_to(self.study_dir)) if completed else None
            ),
            **common,
        )
        self.display.run_finished(record, result_summary(result) if result else verdict.error or "")
        return record

    def _with_host_findings(
        self, verdict: Classified, done: JobDone, overlapped: set[str]
    ) -> ExperimentResult | None:
        """The result with what only the host saw: runs that shared the host with it, foreign
        processes on its GPUs at its start. Rewritten in place (atomically) when there are any."""
        result = verdict.result
        if result is None:
            return None
        foreign = self.manifest.record.runs[done.job.run.run_id].foreign_gpu_processes
        changed = result
        if overlapped:
            changed = changed.with_host_shared(sorted(overlapped))
        if foreign:
            changed = changed.with_host_warning(
                "foreign_gpu_processes",
                f"process(es) {foreign} not of this study were on its GPU(s) when it started",
            )
        if changed is not result:
            work_files.write(done.job.workdir, RESULT_FILE, changed)
        return changed
