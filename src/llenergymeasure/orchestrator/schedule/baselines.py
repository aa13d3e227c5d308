"""The idle baseline a run may reuse (`baseline.reuse_s`): the newest one an earlier run of
the study measured itself (never one it reused: no chains) on the same host and the same GPUs
(by UUID; a CPU run: none), ended within `reuse_s`. The host offers it in config.json; the
container uses it only while its GPUs are no warmer than during it (`ReusedBaseline.refusal`).

The records read are the study's own result.json files, read as untrusted input
(`work_files.read_result`); one that cannot be read is passed over.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from llenergymeasure.contract.baseline import BaselineOrigin, ReusedBaseline
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import parse_utc
from llenergymeasure.study import work_files
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.untrusted import UntrustedFile

CANDIDATES_READ = 5  # result.json files read at most per run started


def offered_baseline(
    study_dir: Path, record: StudyRecord, request: RunRequest, node: str | None
) -> ReusedBaseline | None:
    """The baseline to offer the run of `request`, if its config reuses one and one fits."""
    config, context = request.config, request.context
    reuse_s = config.baseline.reuse_s
    if reuse_s is None or not config.baseline.enabled or node is None:
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    candidates = sorted(
        (
            r
            for r in record.runs.values()
            if r.status == "completed"
            and r.run_id != context.run_id
            and r.node == node
            and r.gpu_indices == context.gpu_indices
            and r.gpu_uuids == context.gpu_uuids
            and r.finished_at is not None
            and (now - parse_utc(r.finished_at)).total_seconds() <= reuse_s
        ),
        key=lambda r: r.finished_at or "",
        reverse=True,
    )
    for candidate in candidates[:CANDIDATES_READ]:
        offer = _measured_baseline(study_dir, candidate, now, reuse_s)
        if offer is not None:
            return offer
    return None


def _measured_baseline(
    study_dir: Path, candidate: RunRecord, now: datetime.datetime, reuse_s: float
) -> ReusedBaseline | None:
    try:
        result = work_files.read_result(StudyPaths(study_dir).work(candidate.run_id))
    except (OSError, ValueError, UntrustedFile):
        return None
    energy = result.energy
    baseline = energy.idle_baseline
    if baseline is None or energy.baseline_reused_from is not None:
        return None
    age = (now - parse_utc(baseline.measured_at)).total_seconds()
    if not 0 <= age <= reuse_s:
        return None
    return ReusedBaseline(
        baseline=baseline, origin=BaselineOrigin(run_id=candidate.run_id, age_s=age)
    )
