"""`llem status STUDY_DIR` on a Slurm study no llem follows (after `--detach`, or a llem that
died): ended jobs are collected into the manifest, as the attached llem would have done.

Runs Slurm lost (node failure) are recorded `interrupted`: `llem run --resume` submits them
again. Queued and running jobs are left as they are. When every run has its outcome the study's
status and outputs are written, as at the end of an attached study.
"""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.orchestrator import collect
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.slurm.batches import private_slurm_dir
from llenergymeasure.orchestrator.slurm.executor import SlurmExecutor
from llenergymeasure.orchestrator.slurm.node_job import jobs_dir, read_node_job
from llenergymeasure.orchestrator.study_folder import writer_lock
from llenergymeasure.study.folder import load_plan
from llenergymeasure.study.manifest import Manifest, load_manifest

OPEN_STATUSES = ("running", "pending")


def has_open_jobs(study_dir: Path) -> bool:
    record = load_manifest(study_dir)
    return any(run.status in OPEN_STATUSES and run.executor_job_id for run in record.runs.values())


def reconcile(study_dir: Path, display: Display) -> int:
    """Collect ended jobs; the number of runs recorded."""
    with writer_lock(study_dir), Manifest.open(study_dir) as manifest:
        record = manifest.record
        open_ids = {
            r.run_id
            for r in record.runs.values()
            if r.status in OPEN_STATUSES and r.executor_job_id
        }
        runs = [run for run in load_plan(study_dir) if run.run_id in open_ids]
        if not runs:
            return 0
        jobs = jobs_dir(private_slurm_dir(study_dir))
        execution = read_node_job(jobs, runs[0].run_id).execution
        executor = SlurmExecutor(study_dir, record.study_id, execution)
        executor.reattach(runs)
        recorder = collect.Recorder(manifest, study_dir, display)
        collected = 0
        for done in executor.wait(0):
            collected += 1
            common = collect.common_fields(done, set(done.concurrent or ()))
            if done.requeue is not None:
                manifest.update_run(
                    done.job.run.run_id,
                    status="interrupted",
                    outcome="interrupted",
                    error_type="NodeFailure",
                    error=f"{done.requeue}; `llem run --resume` submits it again",
                    **common,
                )
            elif done.exit.engine_error is not None:
                recorder.engine_refused(done, done.exit.engine_error, common)
            else:
                log_tail = collect.log_tail_of(done)
                verdict = collect.verdict_of(done, log_tail)
                recorder.finished(done, verdict, log_tail, common, set(done.concurrent or ()))
        statuses = [r.status for r in manifest.record.runs.values()]
        if manifest.record.status == "running" and not any(s in OPEN_STATUSES for s in statuses):
            failed = any(s != "completed" for s in statuses)
            manifest.set_status("failed" if failed else "completed")
            from llenergymeasure.results.export import write_study_outputs  # pandas: only here

            write_study_outputs(study_dir)
        return collected
