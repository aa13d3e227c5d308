"""`llem status STUDY_DIR`: the manifest as a table, one row per run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.errors import UserError
from llenergymeasure.study.manifest import load_manifest, manifest_path

STUDY_DIR = typer.Argument(..., help="The study folder.")


def status(study_dir: Path = STUDY_DIR) -> None:
    """Show each run's status, outcome, attempts, duration and error."""
    if not manifest_path(study_dir).is_file():
        raise UserError(f"{study_dir}: no manifest.jsonl here", hint="give a study folder")
    record = load_manifest(study_dir)
    console = Console(highlight=False)
    counts = Counter(run.status for run in record.runs.values())
    console.print(
        escape(
            f"{record.study_id}: {record.status}; "
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        )
    )
    table = Table("run", "status", "outcome", "attempts", "duration s", "exit", "error")
    for run in sorted(record.runs.values(), key=lambda r: r.run_index):
        table.add_row(
            escape(run.run_id),
            run.status,
            run.outcome or "",
            str(run.attempts),
            f"{run.duration_s:.1f}" if run.duration_s is not None else "",
            "" if run.exit_code is None else str(run.exit_code),
            escape(((run.error_type or "") + (": " + run.error if run.error else ""))[:80]),
        )
    console.print(table)
