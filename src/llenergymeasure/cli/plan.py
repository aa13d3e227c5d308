"""`llem plan`: what a study would run, without running it (also `llem run --dry-run`)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure import api
from llenergymeasure.config.loader import load_study
from llenergymeasure.config.search import SearchConfig
from llenergymeasure.config.study import (
    TIMEOUT_ESTIMATE_FACTOR,
    TIMEOUT_SLACK_S,
    ExecutionConfig,
    StudyConfig,
)
from llenergymeasure.contract.validity import short_window_note
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.machine import run_spec
from llenergymeasure.orchestrator.planned import search_of
from llenergymeasure.orchestrator.schedule.search import stopping
from llenergymeasure.study import Plan, RunEstimate, design_hash, estimate_study, expand
from llenergymeasure.study.estimate import DeviceBudget, WallTimeEstimate, device_budget
from llenergymeasure.study.expand import GRID
from llenergymeasure.study.order import shuffle_seed
from llenergymeasure.study.sampler_choice import sampler_text
from llenergymeasure.study.search_space import most_runs

DEFAULT_ROWS = 20
CYCLES_OPTION = typer.Option(
    "--cycles", min=1, help="Runs per configuration, over execution.n_cycles of the file."
)
ORDER_OPTION = typer.Option(
    "--order",
    help="sequential | interleaved | shuffled, over execution.cycle_order of the file.",
)


# Columns beyond these are summarised, so a wide sweep still fits a terminal.
MAX_SWEPT_COLUMNS = 6


def plan_command(
    study_file: Annotated[Path, typer.Argument(help="The study file (YAML).", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan as JSON for machines.")
    ] = False,
    rows: Annotated[
        int, typer.Option("--rows", min=0, help="Runs (and skipped combinations) listed; 0: all.")
    ] = DEFAULT_ROWS,
    cycles: Annotated[int | None, CYCLES_OPTION] = None,
    order: Annotated[str | None, ORDER_OPTION] = None,
) -> None:
    """Show what a study would run: configurations x cycles, the swept values, skipped
    combinations with their reasons, the images, and an estimated wall time. Runs nothing."""
    study = api.with_overrides(load_study(study_file), cycles=cycles, order=order)
    source_dir = layout.source_dir_for(study_file)
    plan = expand(study, source_dir)
    if study.search is not None:
        search_of(study, plan)  # its metrics, cycles and values checked as `llem run` would
    run_spec.check_prompt_files([c.config for c in plan.configs], source_dir)
    gc.freeze()  # the plan lives as long as this process: keep cyclic GC passes off it
    if as_json:
        # orjson: the stdlib's indented dump is most of the time of a 10^5-run plan
        text = orjson.dumps(
            plan_json(plan, study), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
        )
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stream (a caller capturing output)
            sys.stdout.write(text.decode())
            return
        sys.stdout.flush()
        binary.write(text)
        binary.flush()
        return
    render_plan(plan, study, Console(highlight=False, soft_wrap=True), rows=rows)


def plan_json(plan: Plan, study: StudyConfig) -> dict[str, Any]:
    """The plan as plain data: what `llem plan --json` prints."""
    estimate = estimate_study(plan, study)
    return {
        "study": study.name,
        "source": str(study.source_path) if study.source_path else None,
        "design_hash": design_hash(study),
        "output_dir": study.output_dir,
        "offline": study.offline,
        "images": {backend: study.image_for(backend) for backend in _backends(plan)},
        "execution": study.execution.model_dump(mode="json"),
        "n_configs": plan.n_configs,
        "n_cycles": plan.n_cycles,
        "n_runs": plan.n_runs,
        "estimated_wall_time": estimate.as_dict(),
        "device_budget": (
            budget.as_dict() if (budget := device_budget(plan, study, estimate)) else None
        ),
        "configs": [
            {
                "config_index": planned.config_index,
                "config_hash": planned.config_hash,
                "origin": planned.origin,
                "swept": planned.swept,
                "config": planned.data or planned.config.model_dump(mode="json"),
                "estimate": _run_estimate(estimate.per_config[planned.config_index], study),
            }
            for planned in plan.configs
        ],
        "runs": [
            {
                "run_index": run_index,
                "run_id": plan.run_id(run_index),
                "config_index": config_index,
                "cycle": cycle,
                "config_hash": plan.configs[config_index].config_hash,
            }
            for run_index, (config_index, cycle) in enumerate(plan.order)
        ],
        "skipped": [{"swept": s.swept, "reason": s.reason} for s in plan.skipped],
        "notes": [n for n in [short_window_note(c.config for c in plan.configs)] if n],
        "search": (
            {
                **study.search.model_dump(mode="json"),
                "cells": plan.n_configs,
                "max_runs": most_runs(study, plan),
            }
            if study.search is not None
            else None
        ),
    }


def render_plan(plan: Plan, study: StudyConfig, console: Console, rows: int = DEFAULT_ROWS) -> None:
    """Print the plan for people: header, runs table (first `rows`), totals, skipped, estimate."""
    source = f" ({escape(str(study.source_path))})" if study.source_path else ""
    console.print(f"[bold]Study[/] {escape(study.name)}{source}")
    console.print(f"  design hash {design_hash(study)[:12]}, results under {study.output_dir}/")
    for backend in _backends(plan):
        console.print(
            f"  image for {backend}: {escape(study.image_for(backend))} "
            "(resolved to its digest when the study runs)"
        )
    if study.offline:
        console.print("  offline: nothing is fetched; hub models must be in a cache already")
    else:
        console.print(
            "  hub models and datasets are fetched before the runs; experiments get no network"
        )
    console.print(f"  {escape(_where_text(study))}")

    if study.search is not None:
        console.print("[bold]Search cells[/]: the search runs within each of these")
    console.print(_runs_table(plan, rows))
    shown = len(plan.runs) if rows == 0 else min(rows, len(plan.runs))
    if shown < len(plan.runs):
        console.print(f"  ... {len(plan.runs) - shown} more runs (--rows 0 lists all, --json)")
    _print_backend_counts(plan, console)
    _print_origins(plan, console)

    execution = study.execution
    runs = most_runs(study, plan)
    if study.search is not None:
        _print_search(study.search, console)
        console.print(
            f"[bold]Total[/] {plan.n_configs} cells x at most "
            f"{study.search.runs_per_cell} runs (trials, re-measurements, race) = at most "
            f"{runs} runs"
            + (f", up to {execution.max_parallel} at once" if execution.max_parallel > 1 else "")
        )
    else:
        console.print(
            f"[bold]Total[/] {plan.n_configs} configurations x {plan.n_cycles} cycles = "
            f"{len(plan.runs)} runs, order {execution.cycle_order}"
            + (f" ({_seed_text(study)})" if execution.cycle_order == "shuffled" else "")
            + (f", up to {execution.max_parallel} at once" if execution.max_parallel > 1 else "")
        )
    estimate = estimate_study(plan, study)
    _print_estimate(estimate, console)
    budget = device_budget(plan, study, estimate)
    if budget is not None:
        _print_budget(budget, console)
    _print_timeout(estimate, execution, console, searching=study.search is not None)
    short = short_window_note(c.config for c in plan.configs)
    if short is not None:
        console.print(f"[yellow]{escape(short)}[/]")
    if runs > execution.max_runs_without_confirmation:
        console.print(
            f"[yellow]{runs} runs exceed max_runs_without_confirmation "
            f"({execution.max_runs_without_confirmation}): `llem run` will ask for --yes[/]"
        )
    _print_skipped(plan, console, rows)


def _print_search(search: SearchConfig, console: Console) -> None:
    goals = " and ".join(str(goal) for goal in search.goals)
    constraints = "; ".join(str(c) for c in search.constraints) or "no constraint"
    console.print(f"[bold]Search[/] {escape(goals)}, subject to {escape(constraints)}")
    for key, dimension in search.space.items():
        if isinstance(dimension, list):
            values = ", ".join(_show(v) for v in dimension)
            console.print(f"  {escape(key)}: one of {escape(values)}")
        else:
            scale = " (log scale)" if dimension.log else ""
            step = f" step {dimension.step}" if dimension.step is not None else ""
            kind = "integers" if dimension.integer else "reals"
            console.print(f"  {escape(key)}: {kind} {dimension.low}..{dimension.high}{step}{scale}")
    stops = [f"{search.trials} distinct configurations"]
    if len(search.goals) == 1:
        stops.append(
            f"{stopping.window(search)} trials without a {search.min_improvement:.0%} gain "
            f"over its re-measured best, after at least {stopping.floor(search)} feasible ones"
        )
    if search.max_hours is not None:
        stops.append(f"{search.max_hours:g} h of runs")
    console.print(
        f"  sampler {escape(sampler_text(search))} (seed {search.seed}); each cell stops at "
        + ", or ".join(stops)
        + (
            f"; then its best {search.confirm.top} race on fresh runs until told apart by more "
            f"than {search.confirm.tolerance:.0%} or found within it (at most "
            f"{search.confirm.max_runs} runs)"
            if search.confirm.top
            else "; no confirmation runs"
        )
    )


def _where_text(study: StudyConfig) -> str:
    """Where the runs execute: the executor's own words."""
    execution = study.execution
    return execution.executor.describe(execution.container_engine)


def _seed_text(study: StudyConfig) -> str:
    seed = shuffle_seed(study.execution, design_hash(study))
    return f"seed {seed}" + (
        " from the design hash" if study.execution.shuffle_seed is None else ""
    )


def _backends(plan: Plan) -> list[str]:
    return sorted({planned.config.backend for planned in plan.configs})


def _varying_keys(plan: Plan) -> list[str]:
    """Swept keys whose value differs between configurations (others are shown nowhere new)."""
    seen: dict[str, set[str]] = {}
    for planned in plan.configs:
        for key, value in planned.swept.items():
            seen.setdefault(key, set()).add(_show(value))
    keys = [key for key, values in seen.items() if len(values) > 1 or len(plan.configs) == 1]
    return [key for key in keys if key not in ("backend", "model")]


def _runs_table(plan: Plan, rows: int) -> Table:
    keys = _varying_keys(plan)
    shown_keys = keys[:MAX_SWEPT_COLUMNS]
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("config", no_wrap=True)
    table.add_column("cycle", justify="right", no_wrap=True)
    origins = [planned.origin for planned in plan.configs]
    mixed = any(origin != GRID for origin in origins)
    if mixed:
        table.add_column("from", no_wrap=True)
    table.add_column("backend", no_wrap=True)
    table.add_column("model", overflow="fold")
    for key in shown_keys:
        table.add_column(key, overflow="fold")
    if len(keys) > len(shown_keys):
        table.add_column(f"+{len(keys) - len(shown_keys)} more swept")
    runs = plan.runs if rows == 0 else plan.runs[:rows]
    for run in runs:
        cells = [
            str(run.run_index),
            run.config_hash[:8],
            str(run.cycle),
            *([origins[run.config_index]] if mixed else []),
            run.config.backend,
            escape(run.config.model),
        ]
        cells += [escape(_show(run.swept[key])) if key in run.swept else "-" for key in shown_keys]
        if len(keys) > len(shown_keys):
            cells.append("...")
        table.add_row(*cells)
    return table


def _print_backend_counts(plan: Plan, console: Console) -> None:
    counts: dict[str, int] = {}
    for planned in plan.configs:
        counts[planned.config.backend] = counts.get(planned.config.backend, 0) + 1
    if len(counts) > 1:
        parts = ", ".join(f"{backend} {n}" for backend, n in sorted(counts.items()))
        console.print(f"  configurations per backend: {parts}")


def _print_origins(plan: Plan, console: Console) -> None:
    """Which configurations the sweep's grid made and which the experiments list gave."""
    grid = sum(planned.origin == GRID for planned in plan.configs)
    listed = plan.n_configs - grid
    if listed:
        entries = len({planned.origin for planned in plan.configs} - {GRID})
        console.print(
            f"  configurations from the sweep's grid: {grid}; from the experiments list: "
            f"{listed} ({entries} entries; the top-level sweep does not apply to them)"
        )


def _run_estimate(estimate: RunEstimate, study: StudyConfig) -> dict[str, Any]:
    """One configuration's run: its expected duration by phase, and the timeout it gets."""
    return {**estimate.as_dict(), "timeout_s": study.execution.timeout_for(estimate.total_s)}


def _print_budget(budget: DeviceBudget, console: Console) -> None:
    grid = (
        f"; the grid: {budget.grid_h:.3g} {budget.unit} ({budget.grid_runs} runs)"
        if budget.grid_h is not None
        else "; a continuous space has no grid"
    )
    console.print(
        f"[bold]Device time[/] the search at most {budget.search_h:.3g} {budget.unit} "
        f"({budget.search_runs} runs){grid} (a guess, from the same per-run estimate)"
    )


def _print_estimate(estimate: WallTimeEstimate, console: Console) -> None:
    drain = f", drain {_duration(estimate.drain_s)}" if estimate.drain_s else ""
    console.print(
        f"[bold]Estimated wall time[/] {_duration(estimate.total_s)} (a guess, not a measurement: "
        f"start+load {_duration(estimate.startup_s)}, baseline {_duration(estimate.baseline_s)}, "
        f"warmup {_duration(estimate.warmup_s)}, measured {_duration(estimate.measured_s)}"
        f"{drain}, gaps {_duration(estimate.gaps_s)}"
        + (f"; summed over runs, over {estimate.parallel} slots" if estimate.parallel > 1 else "")
        + "; model downloads not included)"
    )
    for unknown in estimate.not_included:
        console.print(f"[yellow]  not included: {escape(unknown)}[/]")


def _print_timeout(
    estimate: WallTimeEstimate, execution: ExecutionConfig, console: Console, searching: bool
) -> None:
    """Each run's timeout: the configured one, else derived from its estimate (their range)."""
    if execution.experiment_timeout_s is not None:
        console.print(
            f"[bold]Run timeout[/] {_duration(execution.experiment_timeout_s)} "
            "(execution.experiment_timeout_s)"
        )
        return
    timeouts = [execution.timeout_for(run.total_s) for run in estimate.per_config]
    if not timeouts:
        return
    low, high = _duration(min(timeouts)), _duration(max(timeouts))
    console.print(
        f"[bold]Run timeout[/] {low if low == high else f'{low} to {high}'} (derived: "
        f"{TIMEOUT_ESTIMATE_FACTOR:g} x a run's estimate + {_duration(TIMEOUT_SLACK_S)}"
        + ("; for the cells' configurations, a trial's from its own" if searching else "")
        + "; execution.experiment_timeout_s sets one)"
    )


def _print_skipped(plan: Plan, console: Console, rows: int) -> None:
    if not plan.skipped:
        return
    console.print(f"[bold yellow]Skipped {len(plan.skipped)} invalid combinations[/]")
    listed = plan.skipped if rows == 0 else plan.skipped[:rows]
    for skipped in listed:
        values = ", ".join(f"{k}={_show(v)}" for k, v in skipped.swept.items()) or "(defaults)"
        console.print(f"  - {escape(values)}: {escape(skipped.reason)}")
    if len(listed) < len(plan.skipped):
        console.print(f"  ... {len(plan.skipped) - len(listed)} more (--rows 0 lists all)")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
