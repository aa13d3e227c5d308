"""`llem run STUDY.yaml`: run (or resume) a study, a fresh container per experiment; a thin
layer over the library's `run_study`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llenergymeasure import api
from llenergymeasure.cli.plan import CYCLES_OPTION, ORDER_OPTION, plan_command, render_plan
from llenergymeasure.config.executors import EXECUTORS
from llenergymeasure.errors import UserError

STUDY_FILE = typer.Argument(..., help="The study file (YAML).")


def run(
    study_file: Path = STUDY_FILE,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the plan (what `llem plan` prints) and stop: nothing is written, nothing "
        "runs, no Docker engine is needed.",
    ),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: the plan as JSON."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the newest study folder with the same design: completed runs are kept, "
        "running/interrupted ones run again.",
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="With --resume, also run failed runs again."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run above the confirmation cap."),
    locked: bool = typer.Option(
        False,
        "--locked",
        help="Refuse to start unless every image matches the lock beside the study file: "
        "<stem>.lock.yaml (dir/x.yaml -> dir/x.lock.yaml, written by `llem images lock`). A "
        "study folder's copy study.yaml has its study.lock.yaml, the images it ran on: "
        "`llem run <study-folder>/study.yaml --locked` reruns it on the same images.",
    ),
    cycles: Annotated[int | None, CYCLES_OPTION] = None,
    order: Annotated[str | None, ORDER_OPTION] = None,
    executor: str | None = typer.Option(
        None,
        "--executor",
        help=f"{' | '.join(EXECUTORS)}, over execution.executor of the file (its settings: "
        "the section of the same name under execution).",
    ),
    detach: bool = typer.Option(
        False,
        "--detach",
        help="On a cluster executor: submit every run, then exit; `llem status STUDY_DIR` "
        "collects what ended, `llem run STUDY.yaml --resume` follows the jobs again.",
    ),
    no_gaps: bool = typer.Option(
        False,
        "--no-gaps",
        help="No gap and no cool-down between runs in this invocation (each run's manifest "
        "record says so): for trying a study out, not for figures you publish.",
    ),
    memory: str | None = typer.Option(
        None,
        "--memory",
        help="Memory limit of each container (Docker syntax, e.g. 8g); past it a run is "
        "killed-OOM. Default: no limit.",
    ),
) -> None:
    """Run a study.

    First the pre-flight: the plan, the images by ID and digest, the estimated time, and a
    confirmation above execution.max_runs_without_confirmation. Then each experiment runs in a
    fresh container, up to execution.max_parallel at once. A study folder's own study.yaml
    puts its rerun beside that folder.
    """
    if not study_file.is_file():
        raise UserError(f"{study_file}: no such file", hint="give the path of a study YAML file")
    if as_json and not dry_run:
        raise UserError("--json goes with --dry-run", hint="`llem run STUDY.yaml --dry-run --json`")
    if dry_run:
        plan_command(study_file, as_json=as_json, cycles=cycles, order=order)
        return
    if retry_failed and not resume:
        raise UserError("--retry-failed goes with --resume")
    console = Console(highlight=False, soft_wrap=True)
    planned = api.plan_study(
        study_file, cycles=cycles, order=order, executor=executor, no_gaps=no_gaps
    )
    render_plan(planned.plan, planned.study, console)
    result = api.run_study(
        planned,
        resume=resume,
        retry_failed=retry_failed,
        locked=locked,
        memory=memory,
        detach=detach,
        no_gaps=no_gaps,
        yes=yes,
        confirm=_confirm_on_terminal,
        console=console,
    )
    # SystemExit, not typer.Exit: the app runs with standalone_mode=False, where click would
    # return an Exit's code instead of exiting with it.
    raise SystemExit(result.exit_code)


def _confirm_on_terminal(runs: int, cap: int) -> bool:
    """Above the cap, a person says yes; without a terminal, an error."""
    if not sys.stdin.isatty():
        raise UserError(
            f"the study plans {runs} runs, above the {cap} that run without confirmation, and "
            "there is no terminal to ask",
            hint="pass --yes (or raise execution.max_runs_without_confirmation)",
        )
    answer = input(f"{runs} runs planned (cap {cap}). Run them? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UserError("not confirmed; nothing was run")
    return True
