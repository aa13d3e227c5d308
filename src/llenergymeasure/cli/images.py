"""`llem images build cpu`: build the project's CPU image (offline when no registry answers)."""

from __future__ import annotations

import typer

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.image_build import build_cpu_image

images_app = typer.Typer(help="Build the project's images.", no_args_is_help=True)


@images_app.command("build")
def build(
    target: str = typer.Argument(..., help="Which image: cpu."),
    base: str | None = typer.Option(
        None, "--base", help="Base image with python3 (default: python:3.11-slim, else offline)."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the inputs match."),
) -> None:
    """Build an image; skipped when one with the same inputs exists."""
    if target != "cpu":
        raise UserError(
            f"no build for {target!r} here",
            hint="`llem images build cpu`; GPU images are built with compose/ on a GPU host",
        )
    build_cpu_image(base=base, say=typer.echo, force=force)
