"""`llem node-run STUDY_DIR RUNS_FILE`: what a Slurm array task runs on its compute node."""

from __future__ import annotations

from pathlib import Path

import typer

from llenergymeasure.orchestrator.slurm.node import node_run

STUDY_DIR = typer.Argument(..., help="The study folder (shared storage).")
RUNS_FILE = typer.Argument(..., help="The batch's run list; line k is task k's run.")


def node_run_command(study_dir: Path = STUDY_DIR, runs_file: Path = RUNS_FILE) -> None:
    """Run this array task's planned run on this node (submitted by `llem run --executor
    slurm`; not for use by hand)."""
    raise SystemExit(node_run(study_dir, runs_file))
