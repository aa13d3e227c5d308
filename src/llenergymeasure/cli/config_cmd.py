"""`llem config`: check a study file; migrate a LLenergyMeasure v0.8 file to ours."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from llenergymeasure.config.loader import load_study
from llenergymeasure.config.migrate import migrate
from llenergymeasure.contract.workdir import atomic_write_text
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.machine import run_spec
from llenergymeasure.study import expand

config_app = typer.Typer(
    help="Check study files; migrate LLenergyMeasure v0.8 files.",
    no_args_is_help=True,
    add_completion=False,
)


@config_app.command("validate")
def validate(
    study_file: Annotated[Path, typer.Argument(help="The study file (YAML).", show_default=False)],
) -> None:
    """Check a study file: syntax, keys, types, values, every combination of its sweep, and the
    prompt files it names (as `llem plan` reads them).

    Prints one line on success; on a mistake, one message with file:line and exit code 2."""
    study = load_study(study_file)
    source_dir = layout.source_dir_for(study_file)
    plan = expand(study, source_dir)
    run_spec.check_prompt_files([c.config for c in plan.configs], source_dir)
    skipped = f", {len(plan.skipped)} invalid combinations skipped" if plan.skipped else ""
    Console(highlight=False, soft_wrap=True).print(
        f"ok: {escape(str(study_file))}: {plan.n_configs} configurations x {plan.n_cycles} "
        f"cycles = {len(plan.runs)} runs{skipped}"
    )


@config_app.command("migrate")
def migrate_command(
    old_file: Annotated[
        Path, typer.Argument(help="A LLenergyMeasure v0.8 study or experiment file.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Where to write it (default: <name>.llem.yaml)."),
    ] = None,
) -> None:
    """Rewrite a LLenergyMeasure v0.8 study or experiment file as a study file of this tool,
    keeping comments where it can; list every key it could not carry over, with its line and
    why. Exit 0 with the file written; 2 if the input is not a study or experiment at all."""
    result = migrate(old_file)
    target = output or old_file.with_name(f"{old_file.stem}.llem.yaml")
    if target.resolve() == old_file.resolve():
        raise UserError(f"{target}: would overwrite the file being migrated", hint="pass -o NEW")
    atomic_write_text(target, result.text)
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"wrote {escape(str(target))}")
    for note in result.notes:
        console.print(f"  note: {escape(note)}")
    if not result.unmapped:
        console.print("every key was carried over; check it with `llem config validate`")
        return
    console.print(f"{len(result.unmapped)} key(s) not carried over:")
    for line, path, reason in result.unmapped:
        console.print(f"  {escape(str(old_file))}:{line}: {escape(path)}: {escape(reason)}")
