"""`llem run STUDY.yaml`: run (or resume) a study, a fresh container per experiment."""

from __future__ import annotations

from pathlib import Path

import typer

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.study_run import RunOptions, run_study

STUDY_FILE = typer.Argument(..., help="The study file (YAML).")


def run(
    study_file: Path = STUDY_FILE,
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the newest study folder with the same design: completed runs are kept, "
        "running/interrupted ones run again.",
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="With --resume, also run failed runs again."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run above the confirmation cap."),
    locked: bool = typer.Option(
        False,
        "--locked",
        help="Refuse to start unless every image matches <study>.lock.yaml (llem images lock).",
    ),
    memory: str | None = typer.Option(
        None,
        "--memory",
        help="Memory limit of each container (Docker syntax, e.g. 8g); past it a run is "
        "killed-OOM. Default: no limit.",
    ),
) -> None:
    """Run a study: pre-flight, then each experiment in a fresh container."""
    if not study_file.is_file():
        raise UserError(f"{study_file}: no such file", hint="give the path of a study YAML file")
    if retry_failed and not resume:
        raise UserError("--retry-failed goes with --resume")
    if locked:
        from llenergymeasure.orchestrator.engine import connect
        from llenergymeasure.orchestrator.image_inventory import check_study_locked

        typer.echo(f"images match {check_study_locked(study_file, connect())}")
    code = run_study(
        study_file, RunOptions(resume=resume, retry_failed=retry_failed, yes=yes, mem_limit=memory)
    )
    # SystemExit, not typer.Exit: the app runs with standalone_mode=False, where click would
    # return an Exit's code instead of exiting with it.
    raise SystemExit(code)
