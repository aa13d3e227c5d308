"""llem-experiment on a work folder in a fresh process, as each run's container runs it: the
benchmarks that measure the container side without Docker share this."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import WorkPaths


def run_experiment(request: RunRequest, work: Path) -> ExperimentResult:
    """Write `request` into the new folder `work`, run the experiment there, read its result
    (exits with the experiment's error where it failed)."""
    work.mkdir(parents=True)
    (work / WorkPaths.CONFIG).write_text(request.model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.experiment", str(work)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        error = work / WorkPaths.ERROR
        detail = error.read_text() if error.exists() else ""
        raise SystemExit(f"llem-experiment failed:\n{proc.stderr[-3000:]}\n{detail}")
    return ExperimentResult.model_validate_json((work / WorkPaths.RESULT).read_text())
