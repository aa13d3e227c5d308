"""Help reads as prose: every command's paragraphs are single lines for the terminal to wrap
(a docstring's own line breaks would break sentences mid-way)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main

from llenergymeasure.cli.app import app


def _commands(command: Any, path: str = "llem") -> Iterator[tuple[str, Any]]:
    yield path, command
    if hasattr(command, "commands"):  # a group (typer's own click)
        for name, sub in command.commands.items():
            yield from _commands(sub, f"{path} {name}")


def test_every_help_paragraph_is_one_line():
    root = typer.main.get_command(app)
    seen = 0
    for path, command in _commands(root):
        for paragraph in (command.help or "").split("\n\n"):
            assert "\n" not in paragraph.strip(), f"{path}: {paragraph!r}"
        seen += 1
    assert seen >= 15
