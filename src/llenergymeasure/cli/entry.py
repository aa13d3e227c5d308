"""The `llem` entry point. A UserError becomes one message on stderr and exit 2, a Ctrl+C
before the study loop routes signals exit 130, never a traceback.

`llem node-run KIND STUDY_DIR ...`, what every job of a cluster executor starts on its node
once per run, goes straight to its executor: loading the other commands (typer, the planner,
the results readers, plots) would add over a second to every run. Anything else, `node-run
--help` included, goes to the full command line (`cli.app`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.stop import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from rich.console import Console

NODE_RUN = "node-run"


def main() -> None:
    """Standalone mode lets typer report usage errors (exit 2) and apply `typer.Exit` codes."""
    try:
        code = _node_run(sys.argv[1:])
        if code is not None:
            raise SystemExit(code)
        from llenergymeasure.cli.app import app

        app()
    except KeyboardInterrupt:  # Ctrl+C before a command routes it (imports, a pre-flight)
        _stderr().print("interrupted before any run started")
        sys.exit(EXIT_INTERRUPTED)
    except UserError as error:
        from llenergymeasure.orchestrator.display import shown

        stderr = _stderr()
        stderr.print(f"[bold red]error:[/] {shown(error.message)}")
        if error.hint:
            stderr.print(f"  [bold]fix:[/] {shown(error.hint)}")
        sys.exit(error.exit_code)


def _node_run(args: list[str]) -> int | None:
    """`node-run KIND STUDY_DIR [ARGUMENT...]` as an executor's job script writes it: the
    run's exit code; None for any other command line."""
    if len(args) < 3 or args[0] != NODE_RUN or any(a.startswith("-") for a in args[1:]):
        return None
    from llenergymeasure.orchestrator.executors.base import executor_class

    return executor_class(args[1]).node_run(Path(args[2]), args[3:])


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)
