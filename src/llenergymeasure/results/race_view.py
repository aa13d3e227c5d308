"""A cell's race in words: each candidate's standing, the rounds, the runs spent, and (several
objectives) the front. `results show` and the report print these, so both say the same thing.

Every judgement here is read from the race's own record and verdict (`results.search`,
`results.racing`); nothing is decided again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llenergymeasure.config.search import SearchConfig
from llenergymeasure.results.racing import Difference
from llenergymeasure.results.search import CellView, Confirmed, Standing


@dataclass(frozen=True)
class RaceRow:
    """One candidate of the race: its differences from the leader (None: it is the leader, or
    it is out of the race) and its status in words."""

    candidate: Confirmed
    differences: list[Difference] | None
    status: str


def race_rows(search: SearchConfig, cell: CellView) -> list[RaceRow]:
    """The cell's candidates in the race's order (best search value first), each with where
    the race left it: leader, within the margin, undecided, eliminated (when and why)."""
    verdict = cell.verdict
    margin = search.confirm.tolerance
    standings = {
        s.candidate.config_hash: s
        for s in [*verdict.equivalent, *verdict.front, *verdict.undecided]
    }
    undecided = {s.candidate.config_hash for s in verdict.undecided}
    leader = verdict.leader.config_hash if verdict.leader else None
    rows = []
    for candidate in cell.confirmed:
        key = candidate.config_hash
        standing = standings.get(key)
        if key == leader:
            status = "leader"
        elif key in verdict.eliminated:
            when = eliminated_in(cell, key)
            status = (
                f"eliminated in round {when}: " if when is not None else "eliminated: "
            ) + verdict.eliminated[key]
        elif standing is not None and key in undecided:
            status = "undecided" + _more_runs(standing, verdict.leader)
        elif standing is not None:
            status = _settled(search, standing, margin)
        else:
            status = "no fresh run with a figure yet"
        rows.append(RaceRow(candidate, standing.differences if standing else None, status))
    return rows


def eliminated_in(cell: CellView, key: str) -> int | None:
    """The round that eliminated `key` (None: no recorded round did)."""
    return next((r.round for r in cell.rounds if key in r.eliminated), None)


def _more_runs(standing: Standing, leader: Confirmed | None) -> str:
    if leader is None:
        return ""
    if standing.runs_to_settle is None:
        spread = all(math.isfinite(d.ci_high - d.ci_low) for d in standing.differences)
        return ": its difference sits on the margin" if spread else ": no CI yet"
    more = max(standing.runs_to_settle - min(standing.candidate.runs, leader.runs), 1)
    return f": about {more} more runs each ({standing.runs_to_settle} in all) would settle it"


def _settled(search: SearchConfig, standing: Standing, margin: float) -> str:
    better = better_on(search, standing)
    if not better:
        return f"not told apart from the leader by more than {margin:.0%}"
    return "on the front: better than the leader on " + ", ".join(better)


def better_on(search: SearchConfig, standing: Standing) -> list[str]:
    """The objectives a settled candidate beats the leader on by more than the margin: none
    where it is within the margin of it on every one, some where it is a trade-off."""
    return [
        goal.metric
        for goal, d in zip(search.goals, standing.differences, strict=True)
        if d.relation == "better"
    ]


def fresh_runs(candidate: Confirmed) -> str:
    """Its fresh runs with a result, and of how many where some have none (yet)."""
    if candidate.runs == candidate.planned:
        return str(candidate.runs)
    return f"{candidate.runs} of {candidate.planned}"


def difference_text(diff: Difference) -> str:
    """A relative difference from the leader (positive: worse) with its 95 % CI."""
    if not (math.isfinite(diff.ci_low) and math.isfinite(diff.ci_high)):
        return f"{diff.relative:+.1%} (no CI yet: two runs a side needed)"
    return f"{diff.relative:+.1%} [{diff.ci_low:+.1%}, {diff.ci_high:+.1%}]"


def round_lines(search: SearchConfig, cell: CellView) -> list[str]:
    """One line per recorded round: its leader, who it eliminated (and why), settled, left
    undecided, and why the race ended."""
    lines = []
    before: dict[str, str] = {}
    for record in cell.rounds:
        if record.round == 0:
            chosen = ", ".join(key[:8] for key in record.candidates)
            line = f"round 0: racing {chosen} (best search value first)" if chosen else "round 0"
        else:
            parts = [f"leader {record.leader[:8]}" if record.leader else "no leader"]
            new = {k: why for k, why in record.eliminated.items() if k not in before}
            if new:
                parts.append(
                    "eliminated " + ", ".join(f"{k[:8]} ({why})" for k, why in new.items())
                )
            if record.equivalent:
                parts.append("within the margin " + ", ".join(k[:8] for k in record.equivalent))
            if record.front:
                parts.append("on the front " + ", ".join(k[:8] for k in record.front))
            if record.undecided:
                parts.append("undecided " + ", ".join(k[:8] for k in record.undecided))
            line = f"round {record.round} ({record.runs} runs): " + "; ".join(parts)
        if record.ended:
            line += f"; ended: {record.ended}"
        lines.append(line)
        before = record.eliminated
    return lines


def runs_spent(search: SearchConfig, cell: CellView) -> str:
    """The cell's runs by purpose, beside the grid's size where the space is finite."""
    runs = cell.runs
    line = (
        f"{sum(runs.values())} runs: {runs['search']} search, {runs['remeasure']} "
        f"re-measurement, {runs['confirmation']} confirmation"
    )
    size = search.space_size()
    line += f" (grid: {size} configurations)" if size is not None else ""
    return line + (f"; {cell.cost.text()}" if cell.cost and cell.cost.total else "")


def front_lines(search: SearchConfig, cell: CellView) -> list[str]:
    """Several objectives: the front of the candidates left, the leader with those within the
    margin of it on every objective, each trade-off on its own (differences are known against
    the leader only), and those not yet placed."""
    verdict = cell.verdict
    if verdict.leader is None or len(search.goals) == 1:
        return []
    close = [s.candidate for s in verdict.equivalent]
    apart = [s.candidate for s in verdict.front]
    with_close = ", ".join(c.config_hash[:8] for c in close)
    lines = [
        f"front: {described(verdict.leader)}"
        + (f", with {with_close} within the margin" if close else "")
    ]
    lines += [f"front: {described(c)} (a trade-off with the leader)" for c in apart]
    if verdict.undecided:
        names = ", ".join(s.candidate.config_hash[:8] for s in verdict.undecided)
        lines.append(f"not yet placed: {names}")
    return lines


def described(candidate: Confirmed) -> str:
    """A candidate by its short config hash and its searched values."""
    params = ", ".join(f"{k}={v}" for k, v in candidate.params.items())
    return f"{candidate.config_hash[:8]} ({params})" if params else candidate.config_hash[:8]
