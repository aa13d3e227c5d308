"""A search's winner, decided by racing its best configurations on fresh runs: the rule, and why.

A search's own trials are single noisy runs, and the best of many single runs is partly luck (the
winner's curse), so a cell's winner is decided on fresh runs only. Its best `confirm.top`
feasible configurations (the candidates) run again, one fresh run each per round, interleaved
(A B C, A B C, ...), in fresh containers, until the runs settle what a user asks of a winner: is
it within the margin of the best of them?

- **How a difference is measured.** Relative, as a ratio on the log scale: the run-to-run noise
  of energy, throughput and latency is proportional to the value, so one spread fits every
  candidate on that scale. Its bounds are one-sided 95 % confidence bounds from Student's t
  with the candidates' pooled run-to-run spread (one spread for all: the same harness on the
  same host); together they make the difference's 90 % interval. Pooling gives the bounds the
  degrees of freedom that two or three runs of one candidate cannot: with 3 candidates x 2 runs,
  t = 2.35 instead of 6.3.
- **Against the equivalence margin** `confirm.tolerance` (m, relative: 5 % by default). Near an
  optimum the best few configurations are usually within noise of each other: a demand for a
  strict winner would end most searches in "no clear winner", and asking each of them to be
  shown within m of the leader would take many runs for a claim nobody needs. The claim a winner
  needs is about the winner: no candidate beats it by more than m. So each candidate C is
  compared with the leader L (the best mean), the difference D = C - L in the objective's
  direction (positive: C is worse):
  - **eliminated** when D's lower bound is above m (C is worse than L by more than m, with 95 %
    confidence): it runs no more;
  - **undecided** when D's lower bound is below -m (C may beat L by more than m: the leader's
    win is not bounded): both run again;
  - **within the margin** otherwise (C cannot be shown better than L by more than m, nor worse by
    more than m): it runs no more, and is named beside the winner as not told apart from it by
    more than the margin.
- **The verdict.** The race ends when no candidate is undecided, with the leader as the winner:
  "X" when every other candidate is eliminated, "X; Y and Z are not told apart from it by more
  than 5 %" otherwise. Where `confirm.max_runs` is spent first, the verdict is "no clear winner":
  the leader leads, each undecided candidate is named with its difference, and the number of
  further runs each that would settle it is estimated from the spread.
- **Out of the race.** A candidate whose fresh runs fail a constraint (on their mean), lack a
  figure, or carry a GPU-energy reading that is not valid, is eliminated with that reason: it
  cannot win.
- **Several objectives.** Pair by pair among the candidates left, on every objective: C is
  eliminated when some D is better than it by more than m on every objective, with confidence
  (D dominates it beyond the margin); C is undecided while some D may be (every objective's
  upper bound above m, not all lower bounds). The verdict is the front of the candidates left:
  the leader (best on the first objective), each trade-off (better than it by more than m on an
  objective), and the ones within the margin of it.
- **The instrument.** A difference leaves out the instrument's uncertainty (the energy
  counter's): both sides were read by the same instrument on the same host, so its systematic
  part cancels and its random part is already in the run-to-run spread. Each candidate's own
  interval, shown beside its mean, keeps it (`stats.with_instrument`).

A decision needs at least 2 runs of each side and `MIN_DEGREES_OF_FREEDOM` in the pooled spread:
before that, every candidate is undecided. Values that are not all positive (a fraction that can
be 0) are compared as differences relative to the leader's mean instead of on the log scale.

The decisions depend only on the runs' values, in order; each round's decision is a manifest
line, so a resumed search replays it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from scipy import stats as scipy_stats

from llenergymeasure.config.search import Objective

CONFIDENCE = 0.95  # of each one-sided bound: the two make a 90 % interval
MIN_DEGREES_OF_FREEDOM = 2
# C against L: worse by more than the margin (confident), better by more (confident), neither
# shown (within), or L may be beaten by more than the margin (undecided, single objective)
Relation = Literal["worse", "better", "within", "undecided"]
VerdictKind = Literal["winner", "equivalent", "front", "no_clear_winner", "none"]


@dataclass(frozen=True)
class Difference:
    """C against L on one objective: C's mean relative to L's, (C - L) / L in the objective's
    own direction (positive: C is worse), with its one-sided 95 % bounds (a 90 % interval), and
    the relation they settle."""

    relative: float
    ci_low: float
    ci_high: float
    relation: Relation


@dataclass(frozen=True)
class Candidate:
    """A candidate's fresh-run values, one list per objective (a run without a figure is left
    out of its list), or why it is out of the race."""

    key: str
    values: list[list[float]]
    out: str | None = None

    @property
    def n(self) -> int:
        return min((len(v) for v in self.values), default=0)


@dataclass
class RoundDecision:
    """Where one round left the race."""

    leader: str | None
    eliminated: dict[str, str] = field(default_factory=dict)  # key -> why
    equivalent: list[str] = field(default_factory=list)  # within the margin of the leader
    front: list[str] = field(default_factory=list)  # several objectives: a settled trade-off
    undecided: list[str] = field(default_factory=list)
    differences: dict[str, list[Difference]] = field(default_factory=dict)  # key -> per goal

    @property
    def settled(self) -> bool:
        return not self.undecided


def on_scale(values: Sequence[float]) -> bool:
    """Whether values of one objective are compared on the log scale (all positive)."""
    return bool(values) and all(v > 0 for v in values)


def pooled_spread(samples: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(standard deviation, degrees of freedom) pooled over groups, each around its own mean."""
    squares, dof = 0.0, 0
    for group in samples:
        if len(group) < 2:
            continue
        mean = sum(group) / len(group)
        squares += sum((x - mean) ** 2 for x in group)
        dof += len(group) - 1
    return (math.sqrt(squares / dof) if dof else math.nan), dof


@dataclass(frozen=True)
class Scale:
    """How one objective's values are compared: on the log scale or as they are, with the
    spread pooled over every candidate racing."""

    goal: Objective
    logs: bool
    spread: tuple[float, int]

    def of(self, values: Sequence[float]) -> list[float]:
        return [math.log(v) for v in values] if self.logs else list(values)


def difference(
    scale: Scale, mine: Sequence[float], theirs: Sequence[float], margin: float
) -> Difference:
    """`mine` against `theirs` (raw values of `scale.goal`; positive: mine is worse), with the
    relation of its 95 % interval to the margin."""
    sd, dof = scale.spread
    sign = 1.0 if scale.goal.direction == "minimize" else -1.0
    a, b = _mean(scale.of(mine)), _mean(scale.of(theirs))
    if scale.logs:
        centre, bound = sign * (a - b), math.log1p(margin)
    else:
        size = abs(b) or 1.0
        centre, sd, bound = sign * (a - b) / size, sd / size, margin
    if len(mine) < 2 or len(theirs) < 2 or dof < MIN_DEGREES_OF_FREEDOM or not sd >= 0:
        low, high = -math.inf, math.inf
    else:
        half = float(scipy_stats.t.ppf(CONFIDENCE, dof)) * sd
        half *= math.sqrt(1 / len(mine) + 1 / len(theirs))
        low, high = centre - half, centre + half
    relation: Relation
    if low > bound:
        relation = "worse"
    elif high < -bound:
        relation = "better"
    elif low < -bound:
        relation = "undecided"
    else:
        relation = "within"
    if scale.logs:
        return Difference(math.expm1(centre), math.expm1(low), math.expm1(high), relation)
    return Difference(centre, low, high, relation)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def compare(
    goals: Sequence[Objective], candidates: Sequence[Candidate], margin: float
) -> RoundDecision:
    """Where the candidates' fresh runs leave the race (the module's rule): the leader, the
    candidates eliminated (with why), within the margin of the leader, on the front (several
    objectives: a settled trade-off), undecided, and each one's difference from the leader."""
    decision = RoundDecision(leader=None)
    racing = []
    for c in candidates:
        if c.out is not None:
            decision.eliminated[c.key] = c.out
        else:
            racing.append(c)
    ranked = [c for c in racing if c.n > 0]
    if not ranked:
        decision.undecided = [c.key for c in racing]
        return decision
    scales = []
    for k, goal in enumerate(goals):
        logs = on_scale([v for c in ranked for v in c.values[k]])
        scale = Scale(goal, logs, (math.nan, 0))
        spread = pooled_spread([scale.of(c.values[k]) for c in ranked])
        scales.append(Scale(goal, logs, spread))
    ranked.sort(key=lambda c: _rank(goals[0], c.values[0]))
    leader = ranked[0]
    decision.leader = leader.key
    decision.undecided = [c.key for c in racing if c.n == 0]

    def against(c: Candidate, d: Candidate) -> list[Difference]:
        return [difference(s, c.values[k], d.values[k], margin) for k, s in enumerate(scales)]

    for c in ranked[1:]:
        versus_leader = against(c, leader)
        decision.differences[c.key] = versus_leader
        if len(goals) == 1:
            (diff,) = versus_leader
            if diff.relation == "worse":
                decision.eliminated[c.key] = _worse(leader.key, margin, several=False)
            elif diff.relation == "undecided":
                decision.undecided.append(c.key)
            else:
                decision.equivalent.append(c.key)
            continue
        rivals = {d.key: against(c, d) for d in ranked if d is not c}
        beaten_by = next(
            (key for key, diffs in rivals.items() if all(d.relation == "worse" for d in diffs)),
            None,
        )
        if beaten_by is not None:
            decision.eliminated[c.key] = _worse(beaten_by, margin, several=True)
        elif any(all(d.ci_high > margin for d in diffs) for diffs in rivals.values()):
            decision.undecided.append(c.key)  # some rival may dominate it beyond the margin
        elif any(d.relation == "better" for d in versus_leader):
            decision.front.append(c.key)
        else:
            decision.equivalent.append(c.key)
    return decision


def _worse(key: str, margin: float, *, several: bool) -> str:
    every = "on every objective, " if several else ""
    return f"worse than {key[:8]} by more than {margin:.0%} ({every}one-sided 95 % confidence)"


def _rank(goal: Objective, values: Sequence[float]) -> float:
    mean = _mean(values)
    return mean if goal.direction == "minimize" else -mean


def runs_to_settle(diff: Difference, margin: float, runs: int) -> int | None:
    """About how many runs each of two candidates would need for an undecided difference's
    lower bound to come above -margin (so the leader's win is bounded), at its observed
    difference and spread: the bound's distance shrinks as 1/sqrt(runs). None: it is settled,
    there is no spread yet, or the other is better than the leader by more than the margin
    (no number of runs bounds it)."""
    if diff.relation != "undecided" or not math.isfinite(diff.ci_low):
        return None
    half = diff.relative - diff.ci_low
    room = margin + diff.relative
    if room <= 0:
        return None
    return max(runs + 1, math.ceil(runs * (half / room) ** 2))
