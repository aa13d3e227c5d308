"""Classify a finished container into the manifest's outcome (README: "Running a study")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.orchestrator.machine.container import KillReason
from llenergymeasure.study import work_files
from llenergymeasure.study.manifest_models import Outcome, RunStatus
from llenergymeasure.study.untrusted import UntrustedFile, printable


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
    problem: str | None = None,
) -> Classified:
    """`process_limit`: why the container ran into its pids limit (`pids.limit_reason`), if it
    did; a crash it explains is classified as that."""
    # Order matters: what the host did (interrupt, kill) explains an exit before its code.
    if killed_for is KillReason.INTERRUPT:
        return Classified("interrupted", "interrupted", "Interrupted", "stopped by Ctrl+C/SIGTERM")
    if killed_for is KillReason.UNTRUSTED:
        return Classified(
            "failed", "failed", "UntrustedWorkFile", f"{problem}; the container was stopped"
        )
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
    untrusted = work_files.untrusted_entry(workdir)
    if untrusted is not None:
        return Classified(
            "failed", "failed", "UntrustedWorkFile", f"{untrusted}; llem did not read it"
        )
    try:
        report = work_files.read_error(workdir)
        return Classified("failed", "failed", report.type, report.message)
    except FileNotFoundError:
        pass
    except (UntrustedFile, ValidationError, ValueError) as invalid:
        return Classified("failed", "failed", "InvalidErrorFile", _short(invalid))
    if exit_code != 0:
        if process_limit is not None:
            message = f"exited with code {exit_code}: {process_limit}"
            return Classified("failed", "crashed", "ProcessLimit", message)
        return Classified("failed", "crashed", "Crash", f"exited with code {exit_code}")
    try:
        result = work_files.read_result(workdir)
    except FileNotFoundError:
        return Classified("failed", "failed", "NoResult", "exit 0 but no result.json was written")
    except UntrustedFile as refused:
        return Classified("failed", "failed", "InvalidResult", str(refused))
    except (ValidationError, ValueError) as invalid:
        return Classified("failed", "failed", "InvalidResult", f"result.json: {_short(invalid)}")
    died = result.failed_stage
    if died is not None:  # the stages before it are measured and kept with the result
        return Classified("failed", "failed", "ServerFailed", died.detail, result=result)
    return Classified("completed", "completed", result=result)


def _short(error: Exception) -> str:
    text = printable(str(error)).strip().replace("\n", " ")
    return text[:500]
