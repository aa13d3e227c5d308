"""`llem results show` on a search: its trials, the best configuration with its confirmed CI,
and (several objectives) the Pareto front."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from llenergymeasure.orchestrator.display import shown
from llenergymeasure.results.cells import interval, number
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.search import CellView, Confirmed, SearchView, TrialView

STATE_STYLE = {
    "complete": "green",
    "infeasible": "yellow",
    "failed": "red",
    "skipped-duplicate": "dim",
    "pending": "dim",
}
REASON_CHARS = 70


def _unit(metric: str) -> str:
    return BY_COLUMN[metric].unit if metric in BY_COLUMN else ""


def _value(value: Any) -> str:
    return "" if value is None else number(value)


def print_search(console: Console, view: SearchView) -> None:
    search = view.search
    goals = " and ".join(f"{g.direction} {g.metric} ({_unit(g.metric)})" for g in search.goals)
    subject = "; ".join(str(c) for c in search.constraints) or "no constraint"
    console.print(
        f"\n[bold]Search[/]: {shown(goals)}, subject to {shown(subject)} "
        f"(sampler {search.sampler}, seed {search.seed})"
    )
    for cell in view.cells:
        _print_cell(console, view, cell)


def _print_cell(console: Console, view: SearchView, cell: CellView) -> None:
    search = view.search
    swept = ", ".join(f"{k}={v}" for k, v in cell.swept.items())
    where = f"cell {cell.cell}" + (f" ({swept})" if swept else "")
    stopped = f"stopped: {cell.stopped}" if cell.stopped else "still asking"
    console.print(f"\n[bold]{shown(where)}[/]: {len(cell.trials)} trials; {shown(stopped)}")
    table = Table(show_edge=False)
    keys = list(search.space)
    for column in ["#", *keys, "state", *(g.metric for g in search.goals)]:
        table.add_column(shown(column))
    for constraint in search.constraints:
        table.add_column(shown(str(constraint)))
    table.add_column("why not feasible")
    for trial in cell.trials:
        table.add_row(*_trial_cells(trial, keys))
    console.print(table)
    if len(search.goals) > 1:
        _print_front(console, view, cell)
    else:
        _print_best(console, view, cell)


def _trial_cells(trial: TrialView, keys: list[str]) -> list[str]:
    style = STATE_STYLE[trial.state]
    reason = trial.reason or ""
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return [
        str(trial.number),
        *(shown(str(trial.params.get(key, ""))) for key in keys),
        f"[{style}]{trial.state}[/]",
        *(_value(v) for v in trial.values),
        *(_value(v) for v in trial.constraint_values),
        shown(reason),
    ]


def _print_best(console: Console, view: SearchView, cell: CellView) -> None:
    search = view.search
    goal = search.goals[0]
    if cell.confirmed:
        table = Table(
            title="confirmation: fresh runs of the best configurations",
            caption="mean and 95 % CI over the confirmation runs (bootstrap; energy: with the "
            "instrument's uncertainty)",
            show_edge=False,
        )
        for column in ("config", *search.space, "runs", f"{goal.metric} ({_unit(goal.metric)})"):
            table.add_column(shown(column))
        table.add_column("constraints")
        for confirmed in cell.confirmed:
            table.add_row(*_confirmed_cells(confirmed, list(search.space)))
        console.print(table)
        if cell.winner is not None:
            console.print(f"[bold green]best[/]: {_described(cell.winner)}")
        console.print(f"verdict: {shown(cell.verdict or '')}")
        return
    best = cell.best_trial(search)
    if best is None:
        console.print("[yellow]no feasible trial yet[/]")
        return
    params = ", ".join(f"{k}={v}" for k, v in best.params.items())
    console.print(
        f"best trial so far: {shown(params)}: {goal.metric} = {_value(best.values[0])} "
        f"{_unit(goal.metric)} from one run (not confirmed: the best of many noisy runs is "
        "optimistic)"
    )


def _confirmed_cells(confirmed: Confirmed, keys: list[str]) -> list[str]:
    summary = confirmed.objectives[0]
    figure = interval(summary.mean, summary.ci_low, summary.ci_high)
    met = "met" if confirmed.constraints_met else f"not met: {confirmed.reason}"
    return [
        confirmed.config_hash[:8],
        *(shown(str(confirmed.params.get(key, ""))) for key in keys),
        f"{confirmed.runs}/{confirmed.planned}",
        figure,
        shown(met),
    ]


def _described(confirmed: Confirmed) -> str:
    params = ", ".join(f"{k}={v}" for k, v in confirmed.params.items())
    summary = confirmed.objectives[0]
    ci = (
        f", 95 % CI [{number(summary.ci_low)}, {number(summary.ci_high)}]"
        if summary.ci_low is not None and summary.ci_high is not None
        else ""
    )
    return shown(
        f"{params} (config {confirmed.config_hash[:8]}): mean {number(summary.mean)}{ci} "
        f"over {confirmed.runs} runs"
    )


def _print_front(console: Console, view: SearchView, cell: CellView) -> None:
    search = view.search
    front = cell.pareto(search)
    table = Table(title="Pareto front of the feasible trials (single runs)", show_edge=False)
    for column in ("#", *search.space, *(g.metric for g in search.goals)):
        table.add_column(shown(column))
    for trial in sorted(front, key=lambda t: t.values[0] or 0.0):
        table.add_row(
            str(trial.number),
            *(shown(str(trial.params.get(key, ""))) for key in search.space),
            *(_value(v) for v in trial.values),
        )
    console.print(table)
    for confirmed in cell.confirmed:
        means = ", ".join(
            f"{g.metric} {_value(s.mean)}"
            for g, s in zip(search.goals, confirmed.objectives, strict=True)
        )
        console.print(
            f"confirmed {confirmed.config_hash[:8]}: {shown(means)} ({confirmed.runs} runs)"
        )
