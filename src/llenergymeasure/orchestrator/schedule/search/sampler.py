"""One cell's Optuna study: the space as Optuna distributions, ask and tell, and its rebuild
from the records.

The sampler is made afresh for every ask, seeded from (search seed, cell, trial number): what it
suggests next is a function of the seed and the trials it was told, so a study rebuilt from the
manifest suggests what the study it replaces would have (with one run in flight at a time,
exactly; with several, for the same history). No sampler state outlives an ask (the GP
sampler's fitted kernel is not carried over either: it is fitted from the trials each time).

A searched list of numbers is ordered: Optuna sees it as an integer over the indices of its
sorted values (an ordinal: the model knows 64 lies between 32 and 128), and the suggestion is
mapped back to the value. The records hold the values (what a reader reads, what --resume
replays), mapped to indices again when the study is rebuilt.
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
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    SuccessiveHalvingPruner,
)
from optuna.samplers import (
    BaseSampler,
    GPSampler,
    GridSampler,
    NSGAIISampler,
    RandomSampler,
    TPESampler,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from llenergymeasure.config.search import Range, SearchConfig
from llenergymeasure.contract.pruning import SLICES
from llenergymeasure.orchestrator.schedule.search.posterior import CHANCE_KEY, chance_better
from llenergymeasure.results.search import Judgement
from llenergymeasure.study.manifest_models import SliceRecord, WarmRecord
from llenergymeasure.study.sampler_choice import (
    SamplerChoice,
    choose_sampler,
    ordered_values,
)
from llenergymeasure.study.search_space import Cell

# ERROR: the GP sampler warns of every kernel fit that fell back to its prior, which says
# nothing a user acts on; the search's own notes say what it does.
optuna.logging.set_verbosity(optuna.logging.ERROR)

# Optuna's own notes on a trial that are recomputed, not recorded: the constraints come from
# the judgement of the trial's run.
_RECOMPUTED_ATTRS = ("constraints",)
# A pruned trial too: the GP's model leaves it out, and would propose it again and again.
_ASKED = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
WARM_KEY = "llem:warm"  # a trial of an earlier search, told before the first ask


class AskTellGridSampler(GridSampler):
    """Optuna's grid sampler, less its end-of-grid `study.stop()` (valid only inside
    `optimize`): under ask/tell the search stops itself once every point was suggested."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


class FreshGPSampler(GPSampler):
    """Optuna's GP sampler, less its suggestions of a point the cell has already asked for
    (measured, being measured, or pruned; an earlier search's warm-start trial does not count:
    its configuration is yet to be measured here): such a suggestion is dropped for the sampler's
    independent draw (random, of the same seed). On a small discrete space the GP keeps
    proposing its incumbent (its expected improvement stays highest there under noise), the
    source only reuses that run, and the search stalls until it counts as exhausted (1 search
    in 20 on benchmarks/search_samplers.py's cat-oom-4d; none with this).

    Each ask the model answers also notes, in the trial's sampler notes, the chance that an
    untried configuration beats the incumbent by more than `min_improvement`
    (`posterior.chance_better`): the stop rule reads it, and a resume reads the recorded one."""

    def __init__(self, *, min_improvement: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_improvement = min_improvement

    def sample_relative(
        self, study: Any, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params = super().sample_relative(study, trial, search_space)
        if params:
            chance = chance_better(self, study, search_space, self.min_improvement)
            if chance is not None:
                study._storage.set_trial_system_attr(trial._trial_id, CHANCE_KEY, chance)
        if params and any(
            all(other.params.get(name) == value for name, value in params.items())
            for other in study.get_trials(deepcopy=False, states=_ASKED)
            if other.number != trial.number and WARM_KEY not in other.system_attrs
        ):
            return {}
        return params


def distribution(dimension: Any) -> BaseDistribution:
    """A list of numbers: the indices of its sorted values; another list: categorical; a
    range: integer or real, log or stepped."""
    ordered = ordered_values(dimension)
    if ordered is not None:
        return IntDistribution(0, len(ordered) - 1)
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
    """Every point of each key, as Optuna sees it (an ordinal's indices)."""
    grid: dict[str, list[Any]] = {}
    for key in cell.keys:
        dimension = key.dimension
        ordered = ordered_values(dimension)
        if ordered is not None:
            grid[key.key] = list(range(len(ordered)))
            continue
        values = dimension if isinstance(dimension, list) else dimension.grid()
        assert values is not None  # SearchConfig refuses the grid sampler over a real range
        grid[key.key] = list(values)
    return grid


class Ordinals:
    """The cell's lists of numbers: value <-> index of the sorted values."""

    def __init__(self, cell: Cell) -> None:
        self.values: dict[str, list[int | float]] = {}
        for key in cell.keys:
            ordered = ordered_values(key.dimension)
            if ordered is not None:
                self.values[key.key] = ordered

    def to_values(self, internal: dict[str, Any]) -> dict[str, Any]:
        return {
            name: self.values[name][value] if name in self.values else value
            for name, value in internal.items()
        }

    def to_internal(self, params: dict[str, Any]) -> dict[str, Any]:
        """The recorded values as Optuna's; a value is found by type and value (1 is not 1.0:
        both may be listed)."""
        return {
            name: _index_of(self.values[name], value) if name in self.values else value
            for name, value in params.items()
        }


def _index_of(ordered: list[int | float], value: Any) -> int:
    return next(i for i, v in enumerate(ordered) if type(v) is type(value) and v == value)


def derived_seed(seed: int, cell: int, number: int) -> int:
    digest = hashlib.sha256(f"{seed}:{cell}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def constraint_values(judgement: Judgement) -> dict[str, float]:
    """Named violations: `measured` (the run gave its figures), then c0, c1, ... (one per
    search.constraints entry)."""
    return _named(judgement.violations)


def _named(violations: list[float]) -> dict[str, float]:
    names = ["measured", *(f"c{i}" for i in range(len(violations) - 1))]
    return dict(zip(names, violations, strict=True))


class CellSampler:
    """A cell's trials in Optuna: asked live, or added from the records as finished.
    `choice`: the sampler, chosen by the search's rule unless given (the benchmark compares)."""

    def __init__(
        self, search: SearchConfig, cell: Cell, choice: SamplerChoice | None = None
    ) -> None:
        self.search, self.cell = search, cell
        self.choice = choice or choose_sampler(search, [key.dimension for key in cell.keys])
        self.distributions = {key.key: distribution(key.dimension) for key in cell.keys}
        self.ordinals = Ordinals(cell)
        self.study = optuna.create_study(
            directions=[g.direction for g in search.goals], pruner=pruner_of(search)
        )
        self.live: dict[int, optuna.Trial] = {}  # our trial number -> its Optuna trial

    def _sampler(self, number: int) -> BaseSampler:
        seed = derived_seed(self.search.seed, self.cell.index, number)
        kind, startup = self.choice.kind, self.choice.startup
        if kind == "tpe":
            return TPESampler(
                seed=seed, multivariate=True, constant_liar=True, n_startup_trials=startup
            )
        if kind == "gp":
            settings = {"seed": seed, "n_startup_trials": startup}
            if not self.choice.no_repeats:
                return GPSampler(**settings, warn_independent_sampling=False)
            return FreshGPSampler(
                **settings,
                min_improvement=self.search.min_improvement,
                warn_independent_sampling=False,
            )
        if kind == "nsga2":
            return NSGAIISampler(seed=seed)
        if kind == "grid":  # its seed also orders the grid: one seed for the whole search
            return AskTellGridSampler(
                grid_of(self.cell), seed=derived_seed(self.search.seed, self.cell.index, 0)
            )
        return RandomSampler(seed=seed)

    def ask(self, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The next suggestion (params: the values) and the sampler's notes on it, as trial
        `number`."""
        self.study.sampler = self._sampler(number)
        trial = self.study.ask(self.distributions)
        self.live[number] = trial
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        notes = {k: v for k, v in frozen.system_attrs.items() if k not in _RECOMPUTED_ATTRS}
        return self.ordinals.to_values(trial.params), notes

    def warm(self, records: list[WarmRecord]) -> None:
        """Earlier searches' trials, told as finished before the first ask."""
        for record in records:
            self.study.add_trial(
                create_trial(
                    state=TrialState.COMPLETE,
                    values=record.values,
                    params=self.ordinals.to_internal(record.params),
                    distributions=self.distributions,
                    system_attrs={WARM_KEY: f"{record.study_id}/{record.run_id}"},
                    constraints=_named(record.violations),
                )
            )

    def report(self, number: int, step: int, value: float) -> bool:
        """A live trial's objective at slice `step` (once per step); whether the pruner stops
        it now."""
        trial = self.live[number]
        self._report_new(trial, {step: value})
        return trial.should_prune()

    def _report_new(self, trial: optuna.Trial, values: dict[int, float]) -> None:
        """Report the steps the trial has not been told yet (Optuna keeps the first)."""
        told = self.study.get_trials(deepcopy=False)[trial.number].intermediate_values
        for step, value in values.items():
            if step not in told:
                trial.report(value, step)

    def tell(
        self,
        number: int,
        params: dict[str, Any],
        notes: dict[str, Any],
        judgement: Judgement,
        slices: SliceRecord | None = None,
    ) -> None:
        """Trial `number`'s judgement: a live trial is told; one asked by an earlier llem is
        added as finished (Optuna keeps only what this process asked as running). `slices`:
        what its pruner was told, and whether it stopped the trial (then it is told pruned)."""
        constraints = constraint_values(judgement)
        pruned = slices is not None and slices.pruned is not None
        trial = self.live.pop(number, None)
        if trial is not None:
            if slices is not None:
                self._report_new(trial, slices.values)
            for name, value in constraints.items():
                trial.set_constraint(name, value)
            if pruned:
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                self.study.tell(trial, judgement.told_values())
            return
        self.study.add_trial(
            create_trial(
                state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                values=None if pruned else judgement.told_values(),
                params=self.ordinals.to_internal(params),
                distributions=self.distributions,
                system_attrs=notes,
                intermediate_values=dict(slices.values) if slices is not None else None,
                constraints=constraints,
            )
        )


def pruner_of(search: SearchConfig) -> BasePruner:
    """Optuna's pruner the search names, over the window's slices; none otherwise (a serving
    trial's constraints are settled in its container, `contract.pruning`). The median pruner
    waits for 5 trials' figures and judges from the fifth slice on: a partial window is
    noisier than the whole, and a trial stopped on a tenth of it may be a good one."""
    if search.pruner == "median":
        return MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    if search.pruner == "successive_halving":
        return SuccessiveHalvingPruner(min_resource=1)
    if search.pruner == "hyperband":
        return HyperbandPruner(min_resource=1, max_resource=SLICES)
    return NopPruner()
