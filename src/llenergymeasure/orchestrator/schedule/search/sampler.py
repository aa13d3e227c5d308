"""One cell's Optuna study: the space as Optuna distributions, ask and tell, and its rebuild
from the records.

The sampler is made afresh for every ask, seeded from (search seed, cell, trial number): what it
suggests next is a function of the seed and the trials it was told, so a study rebuilt from the
manifest suggests what the study it replaces would have (with one run in flight at a time,
exactly; with several, for the same history).
"""

from __future__ import annotations

import hashlib
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, GridSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import TrialState, create_trial

from llenergymeasure.config.search import Range, SearchConfig
from llenergymeasure.results.search import Judgement
from llenergymeasure.study.search_space import Cell

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Optuna's own notes on a trial that are recomputed, not recorded: the constraints come from
# the judgement of the trial's run.
_RECOMPUTED_ATTRS = ("constraints",)


class AskTellGridSampler(GridSampler):
    """Optuna's grid sampler, less its end-of-grid `study.stop()` (valid only inside
    `optimize`): under ask/tell the search stops itself once every point was suggested."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def distribution(dimension: Any) -> BaseDistribution:
    """A list of values: categorical; a range: integer or real, log or stepped."""
    if not isinstance(dimension, Range):
        return CategoricalDistribution(list(dimension))
    if dimension.integer:
        return IntDistribution(
            int(dimension.low),
            int(dimension.high),
            log=dimension.log,
            step=int(dimension.step or 1),
        )
    return FloatDistribution(
        float(dimension.low), float(dimension.high), log=dimension.log, step=dimension.step
    )


def grid_of(cell: Cell) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for key in cell.keys:
        dimension = key.dimension
        values = dimension if isinstance(dimension, list) else dimension.grid()
        assert values is not None  # SearchConfig refuses the grid sampler over a real range
        grid[key.key] = list(values)
    return grid


def derived_seed(seed: int, cell: int, number: int) -> int:
    digest = hashlib.sha256(f"{seed}:{cell}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def constraint_values(judgement: Judgement) -> dict[str, float]:
    """Named violations: `measured` (the run gave its figures), then c0, c1, ... (one per
    search.constraints entry)."""
    names = ["measured", *(f"c{i}" for i in range(len(judgement.violations) - 1))]
    return dict(zip(names, judgement.violations, strict=True))


class CellSampler:
    """A cell's trials in Optuna: asked live, or added from the records as finished."""

    def __init__(self, search: SearchConfig, cell: Cell) -> None:
        self.search, self.cell = search, cell
        self.distributions = {key.key: distribution(key.dimension) for key in cell.keys}
        self.study = optuna.create_study(directions=[g.direction for g in search.goals])
        self.live: dict[int, optuna.Trial] = {}  # our trial number -> its Optuna trial

    def _sampler(self, number: int) -> BaseSampler:
        seed = derived_seed(self.search.seed, self.cell.index, number)
        name = self.search.sampler
        if name == "tpe":
            return TPESampler(seed=seed, multivariate=True, constant_liar=True)
        if name == "nsga2":
            return NSGAIISampler(seed=seed)
        if name == "grid":  # its seed also orders the grid: one seed for the whole search
            return AskTellGridSampler(
                grid_of(self.cell), seed=derived_seed(self.search.seed, self.cell.index, 0)
            )
        return RandomSampler(seed=seed)

    def ask(self, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The next suggestion (params) and the sampler's notes on it, as trial `number`."""
        self.study.sampler = self._sampler(number)
        trial = self.study.ask(self.distributions)
        self.live[number] = trial
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        notes = {k: v for k, v in frozen.system_attrs.items() if k not in _RECOMPUTED_ATTRS}
        return dict(trial.params), notes

    def tell(
        self, number: int, params: dict[str, Any], notes: dict[str, Any], judgement: Judgement
    ) -> None:
        """Trial `number`'s judgement: a live trial is told; one asked by an earlier llem is
        added as finished (Optuna keeps only what this process asked as running)."""
        constraints = constraint_values(judgement)
        trial = self.live.pop(number, None)
        if trial is not None:
            for name, value in constraints.items():
                trial.set_constraint(name, value)
            self.study.tell(trial, judgement.told_values())
            return
        self.study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=judgement.told_values(),
                params=params,
                distributions=self.distributions,
                system_attrs=notes,
                constraints=constraints,
            )
        )
