"""`llem config`: check a study file without planning it in full view."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from llenergymeasure.config.loader import load_study
from llenergymeasure.study import expand

config_app = typer.Typer(help="Check study files.", no_args_is_help=True, add_completion=False)


@config_app.command("validate")
def validate(
    study_file: Annotated[Path, typer.Argument(help="The study file (YAML).", show_default=False)],
) -> None:
    """Check a study file: syntax, keys, types, values, and every combination of its sweep.

    Prints one line on success; on a mistake, one message with file:line and exit code 2."""
    study = load_study(study_file)
    plan = expand(study)
    skipped = f", {len(plan.skipped)} invalid combinations skipped" if plan.skipped else ""
    Console(highlight=False, soft_wrap=True).print(
        f"ok: {escape(str(study_file))}: {plan.n_configs} configurations x {plan.n_cycles} "
        f"cycles = {len(plan.runs)} runs{skipped}"
    )
