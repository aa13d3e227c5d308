"""Classify a finished container into the manifest's outcome (README: "Running a study")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import ERROR_FILE, RESULT_FILE, ErrorReport
from llenergymeasure.orchestrator.container import KillReason
from llenergymeasure.study.manifest_models import Outcome, RunStatus


@dataclass(frozen=True)
class Classified:
    status: RunStatus
    outcome: Outcome
    error_type: str | None = None
    error: str | None = None
    result: ExperimentResult | None = None


def classify(
    workdir: Path,
    exit_code: int | None,
    oom_killed: bool,
    killed_for: KillReason | None,
    timeout_s: float | None = None,
    stall_timeout_s: float | None = None,
    process_limit: str | None = None,
) -> Classified:
    """`process_limit`: why the container ran into its pids limit (`pids.limit_reason`), if it
    did; a crash it explains is classified as that."""
    # Order matters: what the host did (interrupt, kill) explains an exit before its code.
    if killed_for is KillReason.INTERRUPT:
        return Classified("interrupted", "interrupted", "Interrupted", "stopped by Ctrl+C/SIGTERM")
    if killed_for is KillReason.TIMEOUT:
        return Classified(
            "failed", "killed_timeout", "Timeout", f"killed after the {timeout_s:g} s timeout"
        )
    if killed_for is KillReason.STALL:
        return Classified(
            "failed",
            "killed_stall",
            "Stall",
            f"killed: no progress event for {stall_timeout_s:g} s",
        )
    if oom_killed:
        return Classified(
            "failed",
            "killed_oom",
            "OutOfMemory",
            f"killed by the kernel OOM killer (exit {exit_code})",
        )
    error_path = workdir / ERROR_FILE
    if error_path.exists():
        try:
            report = ErrorReport.model_validate_json(error_path.read_text(encoding="utf-8"))
            return Classified("failed", "failed", report.type, report.message)
        except (ValidationError, ValueError) as invalid:
            return Classified("failed", "failed", "InvalidErrorFile", _short(invalid))
    if exit_code != 0:
        if process_limit is not None:
            message = f"exited with code {exit_code}: {process_limit}"
            return Classified("failed", "crashed", "ProcessLimit", message)
        return Classified("failed", "crashed", "Crash", f"exited with code {exit_code}")
    result_path = workdir / RESULT_FILE
    if not result_path.exists():
        return Classified("failed", "failed", "NoResult", "exit 0 but no result.json was written")
    try:
        result = ExperimentResult.model_validate_json(result_path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as invalid:
        return Classified("failed", "failed", "InvalidResult", f"result.json: {_short(invalid)}")
    return Classified("completed", "completed", result=result)


def _short(error: Exception) -> str:
    text = str(error).strip().replace("\n", " ")
    return text[:500]
