"""The GP's word on the part of the space not yet run: the chance that some untried
configuration beats the incumbent by more than `min_improvement`, as the model fitted at an ask
gives it. The stop rule (`stopping.py`) waits while that chance is high.

For every untried point of a finite space, the chance is P(objective better than the target)
x P(every constraint met), from the posterior of Optuna's objective GP and of its constraint
GPs (each is modelled apart, as Optuna's own constrained acquisition assumes); the target is the
best feasible value told so far, moved by `min_improvement` (relative). The figure kept is the
largest over the untried points: the most promising configuration the search has not run.

The GPs are the ones the sampler has just fitted for its suggestion (`optuna._gp`, which Optuna
does not promise to keep: the dependency stops below Optuna 6, and where those internals are
not found the chance is not given and the rule stops as it would without it).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import GPSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import norm

CHANCE_KEY = "llem:chance_better"  # the trial's sampler notes: the chance at its ask
MAX_POINTS = 50_000  # above, the untried points are too many to score at each ask
_STD_FLOOR = 1e-12  # as Optuna's standardisation: a constant column divides by this


def untried_points(
    study: Study, search_space: dict[str, BaseDistribution]
) -> list[dict[str, Any]] | None:
    """Every point of a finite space not yet asked (run, running, or rejected), as Optuna's
    parameters; None: the space has a real-valued key without a step or more than MAX_POINTS
    points."""
    columns: list[list[Any]] = []
    for dist in search_space.values():
        column = _values(dist)
        if column is None:
            return None
        columns.append(column)
    if math.prod(len(column) for column in columns) > MAX_POINTS:
        return None
    names = list(search_space)
    asked = {
        tuple(_index(dist, trial.params.get(name)) for name, dist in search_space.items())
        for trial in study.get_trials(deepcopy=False)
    }
    untried = []
    for point in itertools.product(*(range(len(column)) for column in columns)):
        if point not in asked:
            chosen = zip(names, columns, point, strict=True)
            untried.append({name: column[k] for name, column, k in chosen})
    return untried


def _values(dist: BaseDistribution) -> list[Any] | None:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        count = round((dist.high - dist.low) / dist.step) + 1
        return [dist.low + k * dist.step for k in range(count)]
    return None


def _index(dist: BaseDistribution, value: Any) -> Any:
    """A point's place in its key's values: stepped values by their step (a float sum may
    differ from Optuna's in its last digit), a categorical by its choice."""
    if value is None or isinstance(dist, CategoricalDistribution):
        return None if value is None else dist.to_internal_repr(value)
    assert isinstance(dist, IntDistribution | FloatDistribution) and dist.step is not None
    return round((value - dist.low) / dist.step)


def chance_better(
    sampler: GPSampler,
    study: Study,
    search_space: dict[str, BaseDistribution],
    min_improvement: float,
) -> float | None:
    """The largest chance, over the untried points, of beating the incumbent by more than
    `min_improvement`; 0.0 where every point was asked; None where it cannot be told (no
    fitted model, nothing feasible yet, a space that cannot be listed, several objectives)."""
    if len(study.directions) != 1:
        return None
    untried = untried_points(study, search_space)
    if untried is None:
        return None
    if not untried:
        return 0.0
    try:
        return _chance(sampler, study, search_space, untried, min_improvement)
    except (ImportError, AttributeError):  # Optuna's GP internals moved: no model word
        return None


def _chance(
    sampler: GPSampler,
    study: Study,
    search_space: dict[str, BaseDistribution],
    untried: list[dict[str, Any]],
    min_improvement: float,
) -> float | None:
    import torch
    from optuna._gp.search_space import SearchSpace
    from optuna.samplers._gp.sampler import _get_constraint_vals_and_feasibility

    objective_gps = sampler._gprs_cache_list
    if not objective_gps:
        return None
    trials: list[FrozenTrial] = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    # the sampler's own view: it maximises sign x value, standardised over the complete trials
    sign = -1.0 if study.directions[0] == StudyDirection.MINIMIZE else 1.0
    values = sign * np.array([trial.values[0] for trial in trials])
    feasible = np.ones(len(trials), dtype=bool)
    constraint_gps = sampler._constraints_gprs_cache_list or []
    if constraint_gps:
        constraints, feasible = _get_constraint_vals_and_feasibility(trials)
    if not feasible.any():
        return None
    best = values[feasible].max()
    target = (best + min_improvement * abs(best) - values.mean()) / max(values.std(), _STD_FLOOR)

    x = torch.from_numpy(SearchSpace(search_space).get_normalized_params(untried, untried))
    with torch.no_grad():
        chance = _above(objective_gps[0], x, target)
        if constraint_gps:
            flipped = -constraints  # Optuna models -c and asks it to stay above -0
            means, stds = flipped.mean(axis=0), np.maximum(flipped.std(axis=0), _STD_FLOOR)
            for i, gp in enumerate(constraint_gps):
                chance = chance * _above(gp, x, -means[i] / stds[i])
    best_chance = float(chance.max())
    return best_chance if math.isfinite(best_chance) else None


def _above(gp: Any, x: Any, threshold: float) -> np.ndarray:
    """P(f(x) > threshold) under the GP's posterior of the (noise-free) function."""
    mean, variance = gp.posterior(x)
    spread = np.sqrt(np.maximum(variance.numpy(), _STD_FLOOR))
    return np.asarray(norm.sf((threshold - mean.numpy()) / spread))
