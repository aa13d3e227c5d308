"""`llem run STUDY.yaml`: run (or resume) a study, a fresh container per experiment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llenergymeasure.cli.plan import (
    CYCLES_OPTION,
    ORDER_OPTION,
    plan_command,
    render_plan,
    with_overrides,
)
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.preflight import Preflight, RunOptions, plan_study
from llenergymeasure.orchestrator.study_run import execute

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
        help="local | slurm, over execution.executor of the file (slurm: one Slurm job per "
        "run, execution.slurm).",
    ),
    detach: bool = typer.Option(
        False,
        "--detach",
        help="Slurm: submit every run, then exit; `llem status STUDY_DIR` collects what ended, "
        "`llem run STUDY.yaml --resume` follows the jobs again.",
    ),
    memory: str | None = typer.Option(
        None,
        "--memory",
        help="Memory limit of each container (Docker syntax, e.g. 8g); past it a run is "
        "killed-OOM. Default: no limit.",
    ),
) -> None:
    """Run a study: pre-flight (the plan, the images by ID and digest, the estimated time,
    confirmation above execution.max_runs_without_confirmation), then each experiment in a
    fresh container, up to execution.max_parallel at once. A study folder's own study.yaml puts
    its rerun beside that folder."""
    if not study_file.is_file():
        raise UserError(f"{study_file}: no such file", hint="give the path of a study YAML file")
    if as_json and not dry_run:
        raise UserError("--json goes with --dry-run", hint="`llem run STUDY.yaml --dry-run --json`")
    if dry_run:
        plan_command(study_file, as_json=as_json, cycles=cycles, order=order)
        return
    if retry_failed and not resume:
        raise UserError("--retry-failed goes with --resume")
    if executor not in (None, "local", "slurm"):
        raise UserError(f"--executor {executor!r}: choose local or slurm")
    console = Console(highlight=False, soft_wrap=True)
    options = RunOptions(
        resume=resume, retry_failed=retry_failed, locked=locked, mem_limit=memory, detach=detach
    )
    planned = plan_study(
        study_file, lambda study: with_executor(with_overrides(study, cycles, order), executor)
    )
    if detach and planned.study.execution.executor != "slurm":
        raise UserError("--detach goes with the Slurm executor", hint="add --executor slurm")
    render_plan(planned.plan, planned.study, console)
    display = Display(console)
    pre = Preflight.check(planned, options, display)
    try:
        if pre.needs_confirmation and not yes:
            _confirm(len(planned.plan.runs), planned.study.execution.max_runs_without_confirmation)
    except BaseException:
        pre.release()
        raise
    code = execute(pre, options, display)
    # SystemExit, not typer.Exit: the app runs with standalone_mode=False, where click would
    # return an Exit's code instead of exiting with it.
    raise SystemExit(code)


def with_executor(study: StudyConfig, executor: str | None) -> StudyConfig:
    if executor is None:
        return study
    execution = study.execution.model_copy(update={"executor": executor})
    return study.model_copy(update={"execution": execution})


def _confirm(runs: int, cap: int) -> None:
    """Above the cap, a person says yes (or --yes does); without a terminal, an error."""
    if not sys.stdin.isatty():
        raise UserError(
            f"the study plans {runs} runs, above the {cap} that run without confirmation, and "
            "there is no terminal to ask",
            hint="pass --yes (or raise execution.max_runs_without_confirmation)",
        )
    answer = input(f"{runs} runs planned (cap {cap}). Run them? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UserError("not confirmed; nothing was run")
