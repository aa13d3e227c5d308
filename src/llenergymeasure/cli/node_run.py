"""`llem node-run KIND STUDY_DIR ...`: what an executor's job runs on the node it placed a run
on (submitted by `llem run`; not for use by hand)."""

from __future__ import annotations

from pathlib import Path

import typer

from llenergymeasure.orchestrator.executors.base import executor_class

KIND = typer.Argument(..., help="The executor that placed the run (execution.executor.kind).")
STUDY_DIR = typer.Argument(..., help="The study folder (shared storage).")
ARGUMENTS = typer.Argument(None, help="What the executor hands its node (e.g. a run list).")


def node_run_command(
    kind: str = KIND, study_dir: Path = STUDY_DIR, arguments: list[str] | None = ARGUMENTS
) -> None:
    """Run this job's planned run on this node."""
    raise SystemExit(executor_class(kind).node_run(study_dir, list(arguments or [])))
