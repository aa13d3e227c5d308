"""The `llem` command: one typer app; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from llenergymeasure import __version__
from llenergymeasure.cli.config_cmd import config_app
from llenergymeasure.cli.images import images_app
from llenergymeasure.cli.node_run import node_run_command
from llenergymeasure.cli.plan import plan_command
from llenergymeasure.cli.results import results_app
from llenergymeasure.cli.run import run
from llenergymeasure.cli.status import status
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import shown

app = typer.Typer(
    name="llem",
    help=(
        "Measure the energy (J/token), throughput and latency of LLM inference over a study "
        "of configurations, each experiment in a fresh container.\n\n"
        "Start with `llem plan study.yaml` to see what a study would run."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

app.command("plan")(plan_command)
app.add_typer(config_app, name="config")
app.add_typer(results_app, name="results")
app.command("run")(run)
app.command("status")(status)
app.add_typer(images_app, name="images")
app.command("node-run", hidden=True)(node_run_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llem {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """llenergymeasure."""


def main() -> None:
    """Entry point: a UserError becomes one message on stderr and exit 2, never a traceback.

    Standalone mode lets typer report usage errors (exit 2) and apply `typer.Exit` codes.
    """
    try:
        app()
    except UserError as error:
        stderr.print(f"[bold red]error:[/] {shown(error.message)}")
        if error.hint:
            stderr.print(f"  [bold]fix:[/] {shown(error.hint)}")
        sys.exit(error.exit_code)
