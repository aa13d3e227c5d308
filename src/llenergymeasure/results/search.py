"""A search read back: each trial judged against the objectives and constraints, the best so
far, the confirmation of the best configurations with their 95 % CIs, the Pareto front.

One judgement (`judge`) serves the search while it runs (what it tells the sampler) and every
view of it afterwards (`results show`, `--json`, the export, the plots and the report).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from llenergymeasure.config.search import Objective, SearchConfig
from llenergymeasure.contract.pruning import is_pruned
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.results.cost import RunCost, SearchCost, run_cost, search_cost
from llenergymeasure.results.flatten import metric_columns, reason_column
from llenergymeasure.results.instrument import instrument_u
from llenergymeasure.results.load import RunData, StudyData
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.racing import (
    Candidate,
    Difference,
    RoundDecision,
    VerdictKind,
    compare,
)
from llenergymeasure.results.racing import runs_to_settle as racing_runs_to_settle
from llenergymeasure.results.stats import Summary, summarise, with_instrument
from llenergymeasure.results.validity import gpu_energy_validity
from llenergymeasure.study.manifest_models import (
    BudgetRecord,
    RaceRecord,
    SearchRecord,
    TrialRecord,
    WarmRecord,
)

TrialState = Literal["complete", "infeasible", "failed", "pruned", "skipped-duplicate", "pending"]
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


@dataclass(frozen=True)
class Standing:
    """A candidate against the leader: its difference on each objective, and, undecided, about
    how many runs each would settle it (None: not estimable)."""

    candidate: Confirmed
    differences: list[Difference]
    runs_to_settle: int | None = None


@dataclass(frozen=True)
class Verdict:
    """What a cell's race concluded (`results.racing`): its kind, the leader (the winner where
    the kind is `winner` or `equivalent`; with several objectives, the front's member best on
    the first, `front` its settled trade-offs), the candidates within the margin of it, those not
    yet told apart from it, those eliminated (with why), and the conclusion in words."""

    kind: VerdictKind
    text: str
    leader: Confirmed | None = None
    equivalent: list[Standing] = field(default_factory=list)
    undecided: list[Standing] = field(default_factory=list)
    eliminated: dict[str, str] = field(default_factory=dict)  # config hash -> why
    front: list[Standing] = field(default_factory=list)  # several objectives: trade-offs

    @property
    def winner(self) -> Confirmed | None:
        return self.leader if self.kind in ("winner", "equivalent") else None

    def as_json(self, search: SearchConfig) -> dict[str, Any]:
        def standing(s: Standing) -> dict[str, Any]:
            return {
                "config_hash": s.candidate.config_hash,
                "params": s.candidate.params,
                "differences": [
                    {
                        "metric": goal.metric,
                        "relative": d.relative,
                        "ci_low": d.ci_low if math.isfinite(d.ci_low) else None,
                        "ci_high": d.ci_high if math.isfinite(d.ci_high) else None,
                        "relation": d.relation,
                    }
                    for goal, d in zip(search.goals, s.differences, strict=True)
                ],
                "runs_to_settle": s.runs_to_settle,
            }

        return {
            "kind": self.kind,
            "text": self.text,
            "leader": self.leader.config_hash if self.leader else None,
            "tolerance": search.confirm.tolerance,
            "equivalent": [standing(s) for s in self.equivalent],
            "front": [standing(s) for s in self.front],
            "undecided": [standing(s) for s in self.undecided],
            "eliminated": self.eliminated,
        }


NO_VERDICT = Verdict("none", "no confirmation")


@dataclass
class CellView:
    """One cell's search: its trials, best, race (its rounds and candidates) and verdict, and
    (several objectives) front."""

    cell: int
    swept: dict[str, Any]
    trials: list[TrialView] = field(default_factory=list)
    stopped: str | None = None
    confirmed: list[Confirmed] = field(default_factory=list)  # the race's candidates
    rounds: list[RaceRecord] = field(default_factory=list)
    remeasured: int = 0  # runs that re-measured a new incumbent during the search
    race_number: int = 0  # its current race: 1, 2... after budget changes reopened it
    earlier_race_runs: int = 0  # runs of the races a reopening superseded
    verdict: Verdict = NO_VERDICT
    cost: SearchCost | None = None  # device time spent, by purpose (`results/cost.py`)

    @property
    def winner(self) -> Confirmed | None:
        """The configuration the race named (None where it named none)."""
        return self.verdict.winner

    @property
    def search_run_ids(self) -> list[str]:
        """The search's own runs: one per distinct configuration run (a reused trial runs
        nothing)."""
        return [t.run_id for t in self.trials if t.run_id and t.state != "skipped-duplicate"]

    @property
    def runs(self) -> dict[str, int]:
        """Runs spent: the search's own (distinct configurations run), re-measurement, race."""
        return {
            "search": len(self.search_run_ids),
            "remeasure": self.remeasured,
            "confirmation": sum(c.planned for c in self.confirmed) + self.earlier_race_runs,
        }

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
    search: SearchConfig  # under the budget in effect
    cells: list[CellView]
    budgets: list[BudgetRecord] = field(default_factory=list)  # each change, in order
    warm: list[WarmRecord] = field(default_factory=list)  # earlier searches' trials told first

    def warm_lines(self) -> list[str]:
        """What a warm start told each cell, a line per earlier study and cell."""
        told: dict[tuple[str, int], list[WarmRecord]] = {}
        for record in self.warm:
            told.setdefault((record.study_id, record.cell), []).append(record)
        return [
            f"warm-started cell {cell} with {len(records)} trial(s) of {study_id} "
            f"({sum(r.feasible for r in records)} feasible)"
            for (study_id, cell), records in told.items()
        ]

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
                "verdict": cell.verdict.as_json(search),
                "rounds": [r.model_dump(mode="json") for r in cell.rounds],
                "runs": cell.runs,
                "cost": cell.cost.as_json() if cell.cost else None,
            }
            if len(search.goals) > 1:
                entry["pareto"] = [t.as_json() for t in cell.pareto(search)]
            cells.append(entry)
        return {
            "objectives": [{"metric": g.metric, "direction": g.direction} for g in search.goals],
            "constraints": [str(c) for c in search.constraints],
            "sampler": search.sampler,
            "seed": search.seed,
            "budget": search.budget.model_dump(mode="json"),
            "budget_changes": [b.model_dump(mode="json") for b in self.budgets],
            "warm_start": [w.model_dump(mode="json") for w in self.warm],
            "space_size": search.space_size(),  # a grid's configurations (None: continuous)
            "best": cells[0]["best"] if len(cells) == 1 else None,
            "cost": cells[0]["cost"] if len(cells) == 1 else None,  # per cell in `cells`
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
            _confirmation(search, cell, record, by_id)
            cell.cost = _cost(search, cell, record, by_id)
    return SearchView(
        search, cells, list(record.budgets) if record else [], list(record.warm) if record else []
    )


def _cost(
    search: SearchConfig, cell: CellView, record: SearchRecord, by_id: dict[str, RunData]
) -> SearchCost:
    """The cell's runs by purpose, each run once."""

    def costs(run_ids: Iterable[str]) -> list[RunCost | None]:
        runs = [by_id.get(run_id) for run_id in dict.fromkeys(run_ids)]
        return [run_cost(run.record, run.result) for run in runs if run is not None]

    mine = [c for c in record.confirms if c.cell == cell.cell]
    return search_cost(
        {
            "search": costs(cell.search_run_ids),
            "remeasure": costs(c.run_id for c in mine if c.purpose == "remeasure"),
            "confirmation": costs(c.run_id for c in mine if c.purpose == "race"),
        },
        search.space_size(),
    )


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
    if run.record is not None and is_pruned(run.record.error_type):
        return "pruned", judgement
    if judgement.failed:
        return "failed", judgement
    return ("complete" if judgement.feasible else "infeasible"), judgement


def judge_run(search: SearchConfig, run: RunData) -> Judgement:
    """An ended run as the search tells it: its result judged, or why it has none."""
    if run.result is not None:
        return judge(search, run.result)
    return judge(search, None, f"{run.outcome}: {run.error or 'no result'}")


def candidate_of(search: SearchConfig, key: str, judgements: list[Judgement]) -> Candidate:
    """A race candidate from its fresh runs' judgements: its objective values, or why it is out
    of the race (its runs' mean fails a constraint, a figure or a steady state is missing, a
    GPU-energy reading is not valid): the one rule the race and every view apply."""
    values = [
        [v for j in judgements if (v := j.values[i]) is not None] for i in range(len(search.goals))
    ]
    return Candidate(key, values, _out_of_race(search, judgements))


def _out_of_race(search: SearchConfig, judgements: list[Judgement]) -> str | None:
    if not judgements:
        return None
    reasons = []
    means = _constraint_means(search, judgements)
    for constraint, mean in zip(search.constraints, means, strict=True):
        if mean is None:
            reasons.append(f"{constraint.metric} not measured")
        elif not constraint.met_by(mean):
            reasons.append(
                f"mean {constraint.metric} = {mean:.4g}, not {constraint.op} {constraint.bound:g}"
            )
    if any(j.reason and NOT_STEADY in j.reason for j in judgements):
        reasons.append(f"{NOT_STEADY} in a confirmation run")
    not_valid = sum(j.energy_not_valid for j in judgements)
    if not_valid:
        reasons.append(f"{ENERGY_NOT_VALID} in {not_valid} of {len(judgements)} confirmation runs")
    missing = [
        goal.metric
        for i, goal in enumerate(search.goals)
        if any(j.values[i] is None for j in judgements)
    ]
    if missing and not not_valid:
        reasons.append(f"{', '.join(missing)} not measured in a confirmation run")
    return "; ".join(reasons) or None


def _constraint_means(search: SearchConfig, judgements: list[Judgement]) -> list[float | None]:
    return [
        summarise([j.constraint_values[i] for j in judgements]).mean
        for i in range(len(search.constraints))
    ]


def race_decision(
    search: SearchConfig, candidates: list[Candidate], eliminated: dict[str, str]
) -> RoundDecision:
    """`racing.compare` over the candidates, those eliminated in an earlier round staying out
    (an elimination is final)."""
    kept = [Candidate(c.key, c.values, eliminated.get(c.key) or c.out) for c in candidates]
    return compare(search.goals, kept, search.confirm.tolerance)


def _confirmation(
    search: SearchConfig, cell: CellView, record: SearchRecord, by_id: dict[str, RunData]
) -> None:
    mine = [c for c in record.confirms if c.cell == cell.cell]
    cell.remeasured = sum(1 for c in mine if c.purpose == "remeasure")
    cell.race_number = record.race_number(cell.cell)  # an earlier race's runs: cost only
    cell.rounds, raced = record.current_race(cell.cell)
    cell.earlier_race_runs = sum(1 for c in mine if c.purpose == "race") - len(raced)
    order = cell.rounds[0].candidates if cell.rounds else []
    hashes = list(dict.fromkeys([*order, *(c.config_hash for c in raced)]))
    candidates: list[Candidate] = []
    for config_hash in hashes:
        records = [c for c in raced if c.config_hash == config_hash]
        results = [
            run.result
            for c in records
            if (run := by_id.get(c.run_id)) is not None and run.result is not None
        ]
        judgements = [judge(search, result) for result in results]
        candidate = candidate_of(search, config_hash, judgements)
        candidates.append(candidate)
        params = records[0].params if records else _params_of(cell, config_hash)
        cell.confirmed.append(
            Confirmed(
                config_hash=config_hash,
                params=params,
                runs=len(results),
                planned=len(records),
                objectives=[
                    with_instrument(
                        [j.values[i] for j in judgements],
                        [instrument_u(result, goal.metric) for result in results],
                    ).summary
                    for i, goal in enumerate(search.goals)
                ],
                constraint_means=_constraint_means(search, judgements),
                constraints_met=candidate.out is None and bool(results),
                reason=candidate.out if results else "no confirmation run has a result yet",
            )
        )
    if candidates:
        cell.verdict = verdict_of(search, cell, candidates)


def _params_of(cell: CellView, config_hash: str) -> dict[str, Any]:
    return next((t.params for t in cell.trials if t.config_hash == config_hash), {})


def verdict_of(search: SearchConfig, cell: CellView, candidates: list[Candidate]) -> Verdict:
    """The verdict of a cell's race: where its last recorded round left it (a race recorded
    before rounds were: one decision over every run), in the words of `results.racing`."""
    last = cell.rounds[-1] if cell.rounds else None
    if last is not None and last.round > 0:
        decision = race_decision(search, candidates, last.eliminated)
        decision.eliminated.update(last.eliminated)
    else:
        decision = race_decision(search, candidates, {})
    by_hash = {c.config_hash: c for c in cell.confirmed}
    runs = {c.key: c.n for c in candidates}
    if decision.leader is None:
        text = "no confirmed configuration can win: " + "; ".join(
            f"{key[:8]}: {why}" for key, why in decision.eliminated.items()
        )
        return Verdict("none", text, eliminated=decision.eliminated)
    leader = by_hash[decision.leader]
    margin = search.confirm.tolerance

    def standing(key: str) -> Standing:
        diffs = decision.differences[key]
        n = min(runs[key], runs[decision.leader])  # type: ignore[index]
        needed = max((racing_runs_to_settle(d, margin, n) or 0 for d in diffs), default=0)
        return Standing(by_hash[key], diffs, needed or None)

    equivalent = [standing(k) for k in decision.equivalent]
    front = [standing(k) for k in decision.front]
    undecided = [standing(k) for k in decision.undecided if k in decision.differences]
    name = _short(leader)
    if last is not None and last.round > 0 and last.ended is None:
        return Verdict(
            "none",
            f"racing: round {last.round} done, {name} leads",
            leader,
            equivalent,
            undecided,
            decision.eliminated,
        )
    if undecided:
        still = "; ".join(
            f"{_short(s.candidate)} ({_relative(s.differences[0])})"
            + (f", about {s.runs_to_settle} runs each would settle it" if s.runs_to_settle else "")
            for s in undecided
        )
        text = (
            f"no clear winner: {name} leads, but is not yet told apart by more than "
            f"{margin:.0%} from {still}"
        )
        return Verdict("no_clear_winner", text, leader, equivalent, undecided, decision.eliminated)
    within = ""
    if equivalent:
        names = _and([_short(s.candidate) for s in equivalent])
        verb = "is" if len(equivalent) == 1 else "are"
        within = f"; {names} {verb} not told apart from it by more than {margin:.0%}"
    if len(search.goals) > 1:
        trades = "".join(f", {_short(s.candidate)} (a trade-off)" for s in front)
        text = f"front: {name} (best {search.goals[0].metric}){trades}{within}"
        return Verdict("front", text, leader, equivalent, [], decision.eliminated, front)
    if equivalent:
        text = f"{name}{within}"
        return Verdict("equivalent", text, leader, equivalent, [], decision.eliminated)
    others = len(decision.eliminated)
    text = f"{name}" + (
        f": the other {others} confirmed configuration(s) are more than {margin:.0%} worse"
        if others
        else ""
    )
    return Verdict("winner", text, leader, [], [], decision.eliminated)


def _short(candidate: Confirmed) -> str:
    params = ", ".join(f"{k}={v}" for k, v in candidate.params.items())
    return f"{candidate.config_hash[:8]} ({params})" if params else candidate.config_hash[:8]


def _relative(diff: Difference) -> str:
    low = f"{diff.ci_low:+.1%}" if math.isfinite(diff.ci_low) else "-inf"
    high = f"{diff.ci_high:+.1%}" if math.isfinite(diff.ci_high) else "+inf"
    return f"{diff.relative:+.1%}, 95 % CI {low} to {high}"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
