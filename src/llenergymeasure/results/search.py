"""A search read back: each trial judged against the objectives and constraints, the best so
far, the confirmation of the best configurations with their 95 % CIs, the Pareto front.

One judgement (`judge`) serves the search while it runs (what it tells the sampler) and every
view of it afterwards (`results show`, `--json`, the export, the plots and the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from llenergymeasure.config.search import Objective, SearchConfig
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.results.flatten import metric_columns, reason_column
from llenergymeasure.results.instrument import instrument_u
from llenergymeasure.results.load import RunData, StudyData
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.stats import Summary, summarise, with_instrument
from llenergymeasure.results.validity import gpu_energy_validity
from llenergymeasure.study.manifest_models import ConfirmRecord, TrialRecord

TrialState = Literal["complete", "infeasible", "failed", "skipped-duplicate", "pending"]
# How far past feasible a trial is that yielded no figure at all (the run failed, or the
# contract rejected its configuration): beyond any constraint's relative violation, so a
# constrained sampler ranks it below every measured trial.
UNMEASURED_VIOLATION = 1e3
NOT_STEADY = "steady_state_not_reached"
ENERGY_NOT_VALID = "GPU energy not valid"


@dataclass(frozen=True)
class Judgement:
    """One trial's figures against the search: what the sampler is told and what is shown."""

    feasible: bool
    values: list[float | None]  # one per objective, in the metric's unit
    constraint_values: list[float | None]  # one per constraint
    violations: list[float]  # [not measured, *constraints]: > 0 violated
    reason: str | None  # why it is not feasible
    failed: bool = False  # the run (or the contract) gave no figure at all
    energy_not_valid: bool = False  # a GPU-energy reading was not used: not valid

    def told_values(self) -> list[float]:
        """The objective values the sampler is told; a value that was not measured is told as
        0.0 and never read: the sampler ranks an infeasible trial by its violation alone."""
        return [value if value is not None else 0.0 for value in self.values]


def judge(
    search: SearchConfig, result: ExperimentResult | None, failure: str | None = None
) -> Judgement:
    """A run's result (or why it has none) against the search's objectives and constraints."""
    n = len(search.constraints)
    if result is None:
        return Judgement(
            feasible=False,
            values=[None] * len(search.goals),
            constraint_values=[None] * n,
            violations=[UNMEASURED_VIOLATION] + [0.0] * n,
            reason=failure or "no result",
            failed=True,
        )
    columns = metric_columns(result)
    reasons: list[str] = []
    # an optimiser seeks out readings that look too good: a GPU-energy reading that is not
    # valid is not used (the run's other figures are)
    validity = gpu_energy_validity(result.energy)
    refused = validity.not_valid and any(_reads_gpu_energy(m) for m in search.metrics)

    def reading(metric: str) -> float | None:
        if refused and _reads_gpu_energy(metric):
            reasons.append(f"{metric} not used: {ENERGY_NOT_VALID}: {validity.detail}")
            return None
        return _reading(columns, metric, reasons)

    values = [reading(goal.metric) for goal in search.goals]
    constraint_values = [reading(c.metric) for c in search.constraints]
    unmeasured = 1.0 if reasons else 0.0
    if any(w.code == NOT_STEADY for w in result.warnings):
        reasons.append(f"{NOT_STEADY}: the constraints are taken as failed")
        unmeasured = max(unmeasured, 1.0)
    violations = [unmeasured]
    for constraint, value in zip(search.constraints, constraint_values, strict=True):
        if value is None:
            violations.append(0.0)
            continue
        violation = constraint.violation(value)
        violations.append(violation)
        if violation > 0:
            reasons.append(
                f"{constraint.metric} = {value:.4g}, not {constraint.op} {constraint.bound:g}"
            )
    return Judgement(
        feasible=not reasons,
        values=values,
        constraint_values=constraint_values,
        violations=violations,
        reason="; ".join(reasons) or None,
        energy_not_valid=refused,
    )


def _reads_gpu_energy(metric: str) -> bool:
    return metric in BY_COLUMN and BY_COLUMN[metric].reads_gpu_energy


def _reading(columns: dict[str, Any], metric: str, reasons: list[str]) -> float | None:
    value = columns.get(metric)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    why = columns.get(reason_column(metric)) or "not in this result"
    reasons.append(f"{metric} not measured: {why}")
    return None


# ------------------------------------------------------------------------------------------------
# the search read back


@dataclass(frozen=True)
class TrialView:
    """A trial as the tables show it."""

    cell: int
    number: int
    params: dict[str, Any]
    state: TrialState
    run_id: str | None
    config_hash: str | None
    values: list[float | None]
    constraint_values: list[float | None]
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "number": self.number,
            "state": self.state,
            "params": self.params,
            "run_id": self.run_id,
            "config_hash": self.config_hash,
            "objective_values": self.values,
            "constraint_values": self.constraint_values,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Confirmed:
    """One of a cell's best configurations, run again: its objectives over the fresh runs."""

    config_hash: str
    params: dict[str, Any]
    runs: int  # confirmation runs with a result
    planned: int
    objectives: list[Summary]  # one per objective: mean, 95 % CI over the confirmation runs
    constraint_means: list[float | None]
    constraints_met: bool
    reason: str | None

    def as_json(self, search: SearchConfig) -> dict[str, Any]:
        return {
            "config_hash": self.config_hash,
            "params": self.params,
            "runs": self.runs,
            "planned_runs": self.planned,
            "objectives": [
                _summary_json(goal, summary)
                for goal, summary in zip(search.goals, self.objectives, strict=True)
            ],
            "constraints_met": self.constraints_met,
            "constraint_means": self.constraint_means,
            "reason": self.reason,
        }


@dataclass
class CellView:
    """One cell's search: its trials, best, confirmation and (several objectives) front."""

    cell: int
    swept: dict[str, Any]
    trials: list[TrialView] = field(default_factory=list)
    stopped: str | None = None
    confirmed: list[Confirmed] = field(default_factory=list)
    winner: Confirmed | None = None
    verdict: str | None = None  # the confirmation's conclusion in words

    def best_trial(self, search: SearchConfig) -> TrialView | None:
        """The best feasible trial by its single run (single objective)."""
        goal = search.goals[0]
        best: TrialView | None = None
        for trial in self.trials:
            if trial.state != "complete" or trial.values[0] is None:
                continue
            if best is None or goal.better(trial.values[0], best.values[0]):  # type: ignore[arg-type]
                best = trial
        return best

    def best_so_far(self, search: SearchConfig) -> list[float | None]:
        """After each trial, the best feasible first-objective value so far (None: none yet)."""
        goal, best, out = search.goals[0], None, []
        for trial in self.trials:
            value = trial.values[0] if trial.state == "complete" else None
            if value is not None and (best is None or goal.better(value, best)):
                best = value
            out.append(best)
        return out

    def pareto(self, search: SearchConfig) -> list[TrialView]:
        """Feasible trials no other feasible trial beats on every objective (one per config)."""
        seen: dict[str, TrialView] = {}
        for trial in self.trials:
            if trial.state == "complete" and trial.config_hash and None not in trial.values:
                seen.setdefault(trial.config_hash, trial)
        front = pareto_front(search.goals, {key: t.values for key, t in seen.items()})
        return [seen[key] for key in front]


def pareto_front(goals: list[Objective], points: dict[str, list[float | None]]) -> list[str]:
    """The keys of the points no other point dominates, in the order given."""
    return [
        key
        for key, values in points.items()
        if not any(dominates(goals, other, values) for other in points.values())
    ]


def dominates(goals: list[Objective], a: list[float | None], b: list[float | None]) -> bool:
    """Whether values `a` are at least as good as `b` on every objective and better on one."""
    pairs = [(g, x, y) for g, x, y in zip(goals, a, b, strict=True)]
    if any(x is None or y is None for _, x, y in pairs):
        return False
    return all(not g.better(y, x) for g, x, y in pairs) and any(g.better(x, y) for g, x, y in pairs)


@dataclass(frozen=True)
class SearchView:
    search: SearchConfig
    cells: list[CellView]

    @property
    def trials(self) -> list[TrialView]:
        return [trial for cell in self.cells for trial in cell.trials]

    def as_json(self) -> dict[str, Any]:
        search = self.search
        cells = []
        for cell in self.cells:
            entry: dict[str, Any] = {
                "cell": cell.cell,
                "swept": cell.swept,
                "stopped": cell.stopped,
                "best": _best_json(cell, search),
                "confirmed": [c.as_json(search) for c in cell.confirmed],
                "verdict": cell.verdict,
            }
            if len(search.goals) > 1:
                entry["pareto"] = [t.as_json() for t in cell.pareto(search)]
            cells.append(entry)
        return {
            "objectives": [{"metric": g.metric, "direction": g.direction} for g in search.goals],
            "constraints": [str(c) for c in search.constraints],
            "sampler": search.sampler,
            "seed": search.seed,
            "best": cells[0]["best"] if len(cells) == 1 else None,
            "cells": cells,
            "trials": [trial.as_json() for trial in self.trials],
        }


def _best_json(cell: CellView, search: SearchConfig) -> dict[str, Any] | None:
    if len(search.goals) > 1:
        return None
    if cell.confirmed:  # no winner where the confirmation set none apart (see `verdict`)
        return {"confirmed": True, **cell.winner.as_json(search)} if cell.winner else None
    trial = cell.best_trial(search)
    if trial is None:
        return None
    return {
        "confirmed": False,
        "config_hash": trial.config_hash,
        "params": trial.params,
        "objectives": [
            {
                "metric": search.goals[0].metric,
                "mean": trial.values[0],
                "n": 1,
                "ci_low": None,
                "ci_high": None,
            }
        ],
        "constraints_met": True,
    }


def _summary_json(goal: Objective, summary: Summary) -> dict[str, Any]:
    return {
        "metric": goal.metric,
        "unit": BY_COLUMN[goal.metric].unit if goal.metric in BY_COLUMN else None,
        "mean": summary.mean,
        "ci_low": summary.ci_low,
        "ci_high": summary.ci_high,
        "n": summary.n,
    }


def search_view(study: StudyData) -> SearchView | None:
    """The search of a study folder, judged from its records and results; None for a grid."""
    if study.search is None:
        return None
    search = study.search.search
    by_id = {run.planned.run_id: run for run in study.runs}
    record = study.manifest.search
    cells = [CellView(cell.index, cell.swept) for cell in study.search.cells]
    judged: dict[str, tuple[TrialState, Judgement | None]] = {}
    for trial in record.trials if record else []:
        cells[trial.cell].trials.append(_trial_view(search, trial, by_id, judged))
    if record is not None:
        for cell, reason in record.stopped.items():
            cells[cell].stopped = reason
        for cell in cells:
            _confirmation(search, cell, record.confirms, by_id)
    return SearchView(search, cells)


def _trial_view(
    search: SearchConfig,
    trial: TrialRecord,
    by_id: dict[str, RunData],
    judged: dict[str, tuple[TrialState, Judgement | None]],
) -> TrialView:
    state: TrialState
    judgement: Judgement | None
    if trial.rejected is not None:
        state, judgement = "infeasible", judge(search, None, f"rejected: {trial.rejected}")
    else:
        run = by_id.get(trial.run_id or "")
        state, judgement = judged.get(trial.run_id or "") or _run_state(search, run)
        if trial.run_id is not None:
            judged[trial.run_id] = (state, judgement)
        if trial.reused:
            state = "skipped-duplicate" if state != "pending" else "pending"
    n = len(search.constraints)
    return TrialView(
        cell=trial.cell,
        number=trial.number,
        params=trial.params,
        state=state,
        run_id=trial.run_id,
        config_hash=trial.config_hash,
        values=judgement.values if judgement else [None] * len(search.goals),
        constraint_values=judgement.constraint_values if judgement else [None] * n,
        reason=judgement.reason if judgement else None,
    )


def _run_state(search: SearchConfig, run: RunData | None) -> tuple[TrialState, Judgement | None]:
    if run is None or run.outcome in ("pending", "running", "interrupted"):
        return "pending", None
    judgement = judge_run(search, run)
    if judgement.failed:
        return "failed", judgement
    return ("complete" if judgement.feasible else "infeasible"), judgement


def judge_run(search: SearchConfig, run: RunData) -> Judgement:
    """An ended run as the search tells it: its result judged, or why it has none."""
    if run.result is not None:
        return judge(search, run.result)
    return judge(search, None, f"{run.outcome}: {run.error or 'no result'}")


def _confirmation(
    search: SearchConfig,
    cell: CellView,
    confirms: list[ConfirmRecord],
    by_id: dict[str, RunData],
) -> None:
    mine = [c for c in confirms if c.cell == cell.cell]
    if not mine:
        return
    hashes = list(dict.fromkeys(c.config_hash for c in mine))
    for config_hash in hashes:
        records = [c for c in mine if c.config_hash == config_hash]
        results = [
            run.result
            for c in records
            if (run := by_id.get(c.run_id)) is not None and run.result is not None
        ]
        judgements = [judge(search, result) for result in results]
        objectives = [
            with_instrument(
                [j.values[i] for j in judgements],
                [instrument_u(result, goal.metric) for result in results],
            ).summary
            for i, goal in enumerate(search.goals)
        ]
        means = [
            summarise([j.constraint_values[i] for j in judgements]).mean
            for i in range(len(search.constraints))
        ]
        reasons = [
            f"mean {c.metric} = {mean:.4g}, not {c.op} {c.bound:g}"
            for c, mean in zip(search.constraints, means, strict=True)
            if mean is not None and not c.met_by(mean)
        ]
        reasons += [
            f"{c.metric} not measured"
            for c, m in zip(search.constraints, means, strict=True)
            if m is None
        ]
        if any(j.reason and NOT_STEADY in j.reason for j in judgements):
            reasons.append(f"{NOT_STEADY} in a confirmation run")
        not_valid = sum(j.energy_not_valid for j in judgements)
        if not_valid:
            reasons.append(f"{ENERGY_NOT_VALID} in {not_valid} of {len(results)} confirmation runs")
        if not results:
            reasons.append("no confirmation run has a result yet")
        cell.confirmed.append(
            Confirmed(
                config_hash=config_hash,
                params=records[0].params,
                runs=len(results),
                planned=len(records),
                objectives=objectives,
                constraint_means=means,
                constraints_met=not reasons,
                reason="; ".join(reasons) or None,
            )
        )
    if len(search.goals) == 1:
        cell.winner, cell.verdict = decide(search.goals[0], cell.confirmed)


def decide(goal: Objective, confirmed: list[Confirmed]) -> tuple[Confirmed | None, str]:
    """The winner by the confirmation runs' mean, and whether its 95 % CI sets it apart: where
    it overlaps another's, the verdict says so and names no false winner."""
    eligible = [c for c in confirmed if c.constraints_met and c.objectives[0].mean is not None]
    if not eligible:
        return None, "no confirmed configuration met every constraint"
    ranked = sorted(
        eligible,
        key=lambda c: (
            c.objectives[0].mean if goal.direction == "minimize" else -c.objectives[0].mean
        ),  # type: ignore[operator]
    )
    best = ranked[0]
    low, high = best.objectives[0].ci_low, best.objectives[0].ci_high
    if low is None or high is None:
        return best, "best by its mean; too few runs for a CI"
    overlapping = [
        c
        for c in ranked[1:]
        if c.objectives[0].ci_low is not None
        and c.objectives[0].ci_high is not None
        and c.objectives[0].ci_low <= high
        and low <= c.objectives[0].ci_high
    ]
    if overlapping:
        names = ", ".join(c.config_hash[:8] for c in overlapping)
        return None, (
            f"no clear winner: the 95 % CI of the best mean ({best.config_hash[:8]}) overlaps "
            f"that of {names}; run more confirmation cycles to separate them"
        )
    return best, "the best mean's 95 % CI is clear of the other confirmed configurations'"
