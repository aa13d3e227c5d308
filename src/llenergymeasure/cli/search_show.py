"""`llem results show` on a search: its trials, its race (the candidates with their standing,
the rounds, the verdict), the runs it spent, and (several objectives) the Pareto front."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from llenergymeasure.orchestrator.display import shown
from llenergymeasure.results.cells import interval, number
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.race_view import (
    RaceRow,
    difference_text,
    fresh_runs,
    front_lines,
    race_rows,
    round_lines,
    runs_spent,
)
from llenergymeasure.results.search import CellView, Confirmed, SearchView, TrialView

STATE_STYLE = {
    "complete": "green",
    "infeasible": "yellow",
    "failed": "red",
    "pruned": "magenta",
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
    for line in view.warm_lines():
        console.print(line)
    for change in view.budgets:
        console.print(f"budget changed on resume at {change.text()}")
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
    if cell.confirmed:
        _print_race(console, view, cell)
    elif len(search.goals) == 1:
        _print_best(console, view, cell)
    console.print(f"runs spent: {runs_spent(search, cell)}")


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
    """Before a race: the best single trial, said to be unconfirmed."""
    search = view.search
    goal = search.goals[0]
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


def _print_race(console: Console, view: SearchView, cell: CellView) -> None:
    """The race: its candidates with their standing, its rounds, its verdict."""
    search = view.search
    keys = list(search.space)
    margin = search.confirm.tolerance
    table = Table(
        title=f"race: fresh runs of the best configurations (margin {margin:.0%})",
        caption="mean [95 % CI] over its fresh runs (bootstrap; energy: with the instrument's "
        "uncertainty); vs leader: relative difference (positive: worse) [95 % CI, from the "
        "candidates' pooled run-to-run spread]",
        show_edge=False,
    )
    goals = [f"{g.metric} ({_unit(g.metric)})" for g in search.goals]
    versus = "vs leader" + (", in the same order" if len(goals) > 1 else "")
    for column in ("config", *keys, "runs", *goals, versus, "status"):
        table.add_column(shown(column), overflow="fold")
    for row in race_rows(search, cell):
        table.add_row(*_race_cells(row, keys))
    console.print(table)
    rounds = round_lines(search, cell)
    if rounds:
        console.print("rounds:")
    for line in rounds:
        console.print(f"  {shown(line)}")
    for line in front_lines(search, cell):
        console.print(shown(line))
    if cell.winner is not None and len(search.goals) == 1:
        console.print(f"[bold green]best[/]: {_described(cell.winner)}")
    console.print(f"[bold]verdict[/]: {shown(cell.verdict.text)}")


def _race_cells(row: RaceRow, keys: list[str]) -> list[str]:
    candidate = row.candidate
    return [
        shown(candidate.config_hash[:8]),
        *(shown(str(candidate.params.get(key, ""))) for key in keys),
        fresh_runs(candidate),
        *(interval(s.mean, s.ci_low, s.ci_high) for s in candidate.objectives),
        "\n".join(difference_text(d) for d in row.differences or []),
        shown(row.status),
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
