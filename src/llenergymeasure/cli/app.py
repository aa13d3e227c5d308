"""The `llem` command line: one typer app; each command group lives in its own module (the
entry point, with its error handling, is `cli.entry`)."""

from __future__ import annotations

import inspect

import typer

from llenergymeasure.cli.config_cmd import config_app
from llenergymeasure.cli.gpus import gpus_app
from llenergymeasure.cli.images import images_app
from llenergymeasure.cli.node_run import node_run_command
from llenergymeasure.cli.plan import plan_command
from llenergymeasure.cli.results import results_app
from llenergymeasure.cli.run import run
from llenergymeasure.cli.status import status
from llenergymeasure.version import __version__

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

app.command("plan")(plan_command)
app.add_typer(config_app, name="config")
app.add_typer(results_app, name="results")
app.command("run")(run)
app.command("status")(status)
app.add_typer(images_app, name="images")
app.add_typer(gpus_app, name="gpus")
app.command("node-run", hidden=True)(node_run_command)


def as_prose(text: str) -> str:
    """A docstring's paragraphs each joined into one line, so the terminal wraps them as
    sentences (the help formatter keeps a docstring's own line breaks)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def _prose_help(group: typer.Typer) -> None:
    for command in group.registered_commands:
        text = command.help or (command.callback.__doc__ if command.callback else None)
        if text:
            command.help = as_prose(text)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _prose_help(sub.typer_instance)


_prose_help(app)


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
