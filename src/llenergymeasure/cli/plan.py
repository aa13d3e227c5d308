"""`llem plan`: what a study would run, without running it (also `llem run --dry-run`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.config.loader import load_study
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.study import Plan, design_hash, estimate_wall_time, expand
from llenergymeasure.study.estimate import WallTimeEstimate
from llenergymeasure.study.expand import GRID

DEFAULT_ROWS = 20
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
) -> None:
    """Show what a study would run: configurations x cycles, the swept values, skipped
    combinations with their reasons, the images, and an estimated wall time. Runs nothing."""
    study = load_study(study_file)
    plan = expand(study)
    if as_json:
        typer.echo(json.dumps(plan_json(plan, study), indent=2))
        return
    render_plan(plan, study, Console(highlight=False, soft_wrap=True), rows=rows)


def plan_json(plan: Plan, study: StudyConfig) -> dict[str, Any]:
    """The plan as plain data: what `llem plan --json` prints."""
    estimate = estimate_wall_time(plan, study.execution)
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
        "n_runs": len(plan.runs),
        "estimated_wall_time": estimate.as_dict(),
        "configs": [
            {
                "config_index": planned.config_index,
                "config_hash": planned.config_hash,
                "origin": planned.origin,
                "swept": planned.swept,
                "config": planned.config.model_dump(mode="json"),
            }
            for planned in plan.configs
        ],
        "runs": [
            {
                "run_index": run.run_index,
                "run_id": run.run_id,
                "config_index": run.config_index,
                "cycle": run.cycle,
                "config_hash": run.config_hash,
            }
            for run in plan.runs
        ],
        "skipped": [{"swept": s.swept, "reason": s.reason} for s in plan.skipped],
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
        console.print("  offline: containers get no network; models must be cached")

    console.print(_runs_table(plan, rows))
    shown = len(plan.runs) if rows == 0 else min(rows, len(plan.runs))
    if shown < len(plan.runs):
        console.print(f"  ... {len(plan.runs) - shown} more runs (--rows 0 lists all, --json)")
    _print_backend_counts(plan, console)
    _print_origins(plan, console)

    execution = study.execution
    console.print(
        f"[bold]Total[/] {plan.n_configs} configurations x {plan.n_cycles} cycles = "
        f"{len(plan.runs)} runs, order {execution.cycle_order}"
        + (f" (seed {execution.shuffle_seed})" if execution.cycle_order == "shuffled" else "")
    )
    _print_estimate(estimate_wall_time(plan, execution), console)
    if len(plan.runs) > execution.max_runs_without_confirmation:
        console.print(
            f"[yellow]{len(plan.runs)} runs exceed max_runs_without_confirmation "
            f"({execution.max_runs_without_confirmation}): `llem run` will ask for --yes[/]"
        )
    _print_skipped(plan, console, rows)


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


def _print_estimate(estimate: WallTimeEstimate, console: Console) -> None:
    console.print(
        f"[bold]Estimated wall time[/] {_duration(estimate.total_s)} (a guess, not a measurement: "
        f"start+load {_duration(estimate.startup_s)}, baseline {_duration(estimate.baseline_s)}, "
        f"warmup {_duration(estimate.warmup_s)}, measured {_duration(estimate.measured_s)}, "
        f"gaps {_duration(estimate.gaps_s)}; model downloads not included)"
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
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
