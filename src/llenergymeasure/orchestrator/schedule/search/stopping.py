"""When a cell's search stops asking for trials: the rule, and why.

A search's trials are single noisy runs. Counting "trials without improvement" from the best
single value (plain patience) stops too early under noise: a lucky draw becomes the best and
nothing measured after it looks better, so the search stops on it, often before it has run a
configuration near the optimum at all. So, besides its hard limits (`trials` distinct
configurations, `max_hours`, an exhausted space), a cell stops asking only when all four hold:

1. **A floor of feasible trials, scaled to the space**: at least
   `ceil(FLOOR_FRACTION x points)` feasible trials, and at least `FLOOR_PER_KEY x keys` (a space
   with a continuous key counts as `CONTINUOUS_POINTS` points); never above `trials`. A sampler
   needs that many to have seen the space's regions before its model is worth trusting.
2. **Stagnation, from estimates rather than single runs**: the trials told since the incumbent
   last improved by at least `min_improvement` (relative). The incumbent is the configuration
   with the best estimate, the mean of all its runs (its trial and any re-measurement), not its
   best single run; the window is `patience` where the study sets it, else
   `ceil(WINDOW_FRACTION x points)`, at least `WINDOW_MIN`: a large space is given longer to
   show that nothing better is left in it.
3. **A re-measured incumbent**: before the search trusts its incumbent to stop on, the
   incumbent is run once more (a fresh run, `purpose: remeasure` in the manifest). A lucky
   draw is found out (its mean falls back), the configuration that then leads is re-measured in
   its turn, and the stagnation count is taken from the estimates that result.
4. **The model sees nothing better left**: where the sampler is the GP over a finite space,
   the chance it gives (at its latest ask) that some untried configuration beats the
   incumbent by more than `min_improvement` is below `CHANCE_STOP` (`posterior.py`). Where
   there is no such figure (TPE, a real-valued key, the random start) the first three decide.

The constants were chosen with `benchmarks/search_efficiency.py` over its five landscapes
(README: "How well it does"): a shorter floor or window missed the optimum more often, a longer
one spent more runs without finding it more often. The model's word (4), against the first
three alone: configurations named within 5 % of the optimum 85 % -> 92.5 % of 40 seeds on
`checks/constr_3d`, 65 % -> 70 % on `checks/cat_oom_4d`, 97 % -> 98 % and 99 % -> 100 % of
100 on the two vLLM landscapes, unchanged on `checks/smooth_2d`, for 0 to 7 more runs (median).
A looser target (the chance of coming within `min_improvement` of the incumbent) named more
(97.5 %, 77.5 %) for 2 to 9 more runs again; the figure kept is the one the rule's text says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llenergymeasure.config.search import Objective, SearchConfig

FLOOR_FRACTION = 0.02
FLOOR_PER_KEY = 3
WINDOW_FRACTION = 0.02
WINDOW_MIN = 10
CONTINUOUS_POINTS = 1000  # a space with a real-valued key, as a number of points
CHANCE_STOP = 0.05  # the model's chance that an untried configuration is better, to stop


@dataclass(frozen=True)
class Told:
    """A told trial as the rule reads it: its configuration, and its value on the first
    objective where it was feasible (None: it was not)."""

    config_hash: str | None
    value: float | None


def points(search: SearchConfig) -> int:
    return search.space_size() or CONTINUOUS_POINTS


def floor(search: SearchConfig) -> int:
    """Feasible trials before a stop for want of improvement is considered."""
    scaled = max(math.ceil(FLOOR_FRACTION * points(search)), FLOOR_PER_KEY * len(search.space))
    return min(scaled, search.trials)


def window(search: SearchConfig) -> int:
    """Told trials without an improvement that end the search (`patience` where set)."""
    if search.patience is not None:
        return search.patience
    return max(math.ceil(WINDOW_FRACTION * points(search)), WINDOW_MIN)


def incumbent(goal: Objective, estimates: dict[str, float]) -> str | None:
    """The configuration with the best estimate (None: nothing feasible yet)."""
    if not estimates:
        return None
    sign = 1.0 if goal.direction == "minimize" else -1.0
    return min(estimates, key=lambda key: sign * estimates[key])


def stagnation(
    goal: Objective, told: Sequence[Told], estimates: dict[str, float], min_improvement: float
) -> int:
    """Told trials, in order, since the last one whose configuration's estimate improved the
    best estimate so far by at least `min_improvement` (relative)."""
    best: float | None = None
    since = 0
    for trial in told:
        value = estimates.get(trial.config_hash or "") if trial.value is not None else None
        if value is not None and (
            best is None
            or (goal.better(value, best) and abs(value - best) >= min_improvement * abs(best))
        ):
            best, since = value, 0
        else:
            since += 1
    return since


def model_sees_better(chance: float | None) -> bool:
    """Whether the model's latest word keeps the search going (None: there is none)."""
    return chance is not None and chance >= CHANCE_STOP
