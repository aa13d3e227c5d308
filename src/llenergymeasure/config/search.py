"""The `search:` section of a study file: find the configuration that meets the constraints for
the best objective, by asking a sampler for trials instead of running the whole grid.

This module is the grammar only (shapes, ranges, the constraint syntax). Which metric names
exist is the result catalogue's business (checked at planning); which keys exist is the
experiment schema's (checked by the loader, at each key's line).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from llenergymeasure.contract.pruning import SLICE_METRICS

Direction = Literal["minimize", "maximize"]
SamplerName = Literal["auto", "tpe", "gp", "nsga2", "random", "grid"]
PrunerName = Literal["none", "constraints", "median", "successive_halving", "hyperband"]
# The pruners that follow an offline trial's window slice by slice (Optuna's, by name).
SLICE_PRUNERS = ("median", "successive_halving", "hyperband")

# `metric <= bound`: the comparisons a constraint may use, and how each is tested.
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_CONSTRAINT = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.]*)\s*(?P<op><=|>=|<|>)\s*(?P<bound>[-+]?[\w.+-]+)\s*$"
)
RANGE_KEYS = frozenset({"low", "high", "log", "step"})


class Objective(BaseModel):
    """`{minimize: metric}` or `{maximize: metric}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimize: str | None = None
    maximize: str | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> Objective:
        if (self.minimize is None) == (self.maximize is None):
            raise ValueError("an objective is {minimize: METRIC} or {maximize: METRIC}")
        return self

    @property
    def metric(self) -> str:
        return self.minimize or self.maximize  # type: ignore[return-value]

    @property
    def direction(self) -> Direction:
        return "minimize" if self.minimize is not None else "maximize"

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b`."""
        return a < b if self.direction == "minimize" else a > b

    def __str__(self) -> str:
        return f"{self.direction} {self.metric}"


class Constraint(BaseModel):
    """`metric <op> bound`, written as one string: `"latency.ttft_ms.p99 <= 200"`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    op: Literal["<=", ">=", "<", ">"]
    bound: float

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _CONSTRAINT.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a constraint; write 'METRIC <= NUMBER' (or <, >=, >)"
            )
        try:
            bound = float(match["bound"])
        except ValueError:
            raise ValueError(f"{value!r}: {match['bound']!r} is not a number") from None
        if math.isnan(bound):
            raise ValueError(f"{value!r}: the bound is not a number")
        return {"metric": match["metric"], "op": match["op"], "bound": bound}

    def met_by(self, value: float) -> bool:
        return COMPARISONS[self.op](value, self.bound)

    def violation(self, value: float) -> float:
        """How far `value` is past the bound, relative to it (<= 0: met): what a constrained
        sampler ranks infeasible trials by."""
        scale = abs(self.bound) or 1.0
        over = value - self.bound if self.op in ("<=", "<") else self.bound - value
        if self.met_by(value):
            return min(over / scale, 0.0)
        return max(over / scale, 1e-9)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


class Range(BaseModel):
    """`{low, high}`: integers when both ends are integers, else real numbers; `log` samples
    on a log scale (ends > 0); `step` the spacing of an integer (or real) grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("a range is either log or stepped, not both")
        if self.integer and self.step is not None and not float(self.step).is_integer():
            raise ValueError("an integer range takes an integer step")
        return self

    @property
    def integer(self) -> bool:
        return (
            isinstance(self.low, int)
            and isinstance(self.high, int)
            and not isinstance(self.low, bool)
            and (self.step is None or float(self.step).is_integer())
        )

    def grid(self) -> list[int | float] | None:
        """Every value of an integer or stepped range; None for a continuous one."""
        if self.integer:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is not None:
            count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            return [self.low + i * self.step for i in range(count)]
        return None

    def ends(self) -> tuple[int | float, int | float]:
        return self.low, self.high


def _dimension_kind(value: Any) -> str | None:
    if isinstance(value, Range | dict):
        return "range"
    return "values" if isinstance(value, list) else None


# A list of values, or a range; told apart by shape, so an error names the one meant.
Dimension = Annotated[
    Annotated[list[Any], Tag("values")] | Annotated[Range, Tag("range")],
    Discriminator(
        _dimension_kind,
        custom_error_type="dimension",
        custom_error_message="a list of values or a range {low, high}",
    ),
]


class Confirm(BaseModel):
    """Race the best `top` feasible configurations on fresh runs until they are told apart by
    more than `tolerance`, found within it, or `max_runs` is spent (`results.racing`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(3, ge=0, description="Configurations raced (0: no confirmation).")
    tolerance: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="The equivalence margin, relative: configurations whose fresh runs show "
        "them within it of the best are named beside it; one worse by more is eliminated.",
    )
    max_runs: int = Field(
        15, ge=2, description="Most fresh runs the race makes (its budget), all candidates."
    )

    @model_validator(mode="after")
    def _room_for_two_rounds(self) -> Confirm:
        if self.top and self.max_runs < 2 * self.top:
            raise ValueError(
                f"max_runs ({self.max_runs}) must allow two fresh runs of each of the top "
                f"{self.top}: a difference needs two runs a side"
            )
        return self


class SearchBudget(BaseModel):
    """What a search may spend: its trials, its stop for want of improvement, its hours and its
    race. Not part of the search's design (`design_dump`): `llem run --resume` with another
    budget continues the same study folder (`orchestrator.schedule.search.source`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int
    patience: int | None = None
    max_hours: float | None = None
    confirm_max_runs: int

    def changes_from(self, before: SearchBudget) -> str:
        """`trials 3 -> 5, ...`: what differs from `before`, in words."""
        return ", ".join(
            f"{name} {getattr(before, name)} -> {getattr(self, name)}"
            for name in type(self).model_fields
            if getattr(before, name) != getattr(self, name)
        )


class SearchConfig(BaseModel):
    """A study that searches: what to optimise, under which constraints, over which space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Objective | None = Field(None, description="One metric to minimize or maximize.")
    objectives: list[Objective] | None = Field(
        None, min_length=2, description="Several metrics: the search finds their Pareto front."
    )
    constraints: list[Constraint] = Field(
        default_factory=list, description="'METRIC <= NUMBER' (or <, >=, >) a trial must meet."
    )
    space: dict[str, Dimension] = Field(
        min_length=1,
        description="Dotted experiment key -> a list of values or a range {low, high, log, step}.",
    )
    trials: int = Field(20, ge=1, le=100_000, description="Most distinct configurations run.")
    sampler: SamplerName = Field(
        "auto", description="auto (by the space's shape) | tpe | gp | nsga2 | random | grid."
    )
    seed: int = Field(0, description="The sampler's seed: same record, same next suggestions.")
    patience: int | None = Field(
        None,
        ge=1,
        description="Trials without a min_improvement gain that stop the search (default: "
        "scaled to the space's size; the stop also waits for a floor of feasible trials and a "
        "re-measured best).",
    )
    min_improvement: float = Field(
        0.01,
        ge=0,
        description="Relative gain over the best estimate so far that counts as an improvement.",
    )
    max_hours: float | None = Field(
        None, gt=0, description="Stop asking after the search's runs took this long, h."
    )
    confirm: Confirm = Field(default_factory=Confirm)
    warm_start: list[str] = Field(
        default_factory=list,
        description="Study folders of earlier searches (relative to the study file): their "
        "trials of this search's configurations are told to the sampler before its first ask, "
        "where they ran on the same image and GPUs.",
    )
    pruner: PrunerName = Field(
        "none",
        description="none: every trial runs in full | constraints: a serving trial (one stage) "
        "stops its load once a latency constraint (METRIC.p50/p90/p99 <= BOUND on ttft, request "
        "or tpot) is settled against it | median, successive_halving, hyperband: Optuna's "
        "pruner stops an offline trial whose objective, reported each tenth of its window, "
        "trails the other trials' at the same point. A stopped trial is recorded pruned (off by "
        "default: see the README for what it saved and cost on the benchmark landscapes).",
    )

    @field_validator("space", mode="before")
    @classmethod
    def _flatten_space(cls, value: Any) -> Any:
        return flatten_space(value) if isinstance(value, dict) else value

    @field_validator("space")
    @classmethod
    def _non_empty_choices(cls, value: dict[str, Dimension]) -> dict[str, Dimension]:
        for key, dimension in value.items():
            if isinstance(dimension, list) and not dimension:
                raise ValueError(f"{key}: an empty list; give at least one value")
            if isinstance(dimension, list) and not all(_scalar(v) for v in dimension):
                raise ValueError(
                    f"{key}: searched values are numbers, strings, booleans or null; search "
                    "the nested keys of a block instead (e.g. prompts.input_length.value)"
                )
            if isinstance(dimension, list) and len(set(map(repr, dimension))) != len(dimension):
                raise ValueError(f"{key}: a value is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if (self.objective is None) == (self.objectives is None):
            raise ValueError("give one `objective:` or a list of `objectives:` (not both)")
        if self.patience is not None and self.objectives is not None:
            raise ValueError(
                "patience watches one objective's best value; with several objectives stop "
                "on trials or max_hours"
            )
        if self.pruner in SLICE_PRUNERS:
            self._check_slice_pruner()
        if self.sampler == "grid":
            for key, dimension in self.space.items():
                if isinstance(dimension, Range) and dimension.grid() is None:
                    raise ValueError(
                        f"sampler grid needs values it can list: give {key} a list, an "
                        "integer range or a step"
                    )
        return self

    def _check_slice_pruner(self) -> None:
        if len(self.goals) != 1:
            raise ValueError(
                f"pruner {self.pruner} follows one objective; with several objectives use "
                "pruner none or constraints"
            )
        metric = self.goals[0].metric
        if metric not in SLICE_METRICS:
            raise ValueError(
                f"pruner {self.pruner} follows the objective slice by slice, and {metric} is "
                f"not reported per slice: the objective is one of {', '.join(SLICE_METRICS)}, "
                "or the pruner is none or constraints"
            )

    @property
    def goals(self) -> list[Objective]:
        """The objectives, one or several, in the order written."""
        return [self.objective] if self.objective is not None else list(self.objectives or [])

    @property
    def metrics(self) -> list[str]:
        """Every metric the search reads: objectives, then constraints."""
        names = [goal.metric for goal in self.goals]
        names += [c.metric for c in self.constraints if c.metric not in names]
        return names

    @property
    def budget(self) -> SearchBudget:
        return SearchBudget(
            trials=self.trials,
            patience=self.patience,
            max_hours=self.max_hours,
            confirm_max_runs=self.confirm.max_runs,
        )

    def with_budget(self, budget: SearchBudget) -> SearchConfig:
        """The same search with another budget (validated: a race still needs two runs a
        candidate)."""
        data = self.model_dump(mode="json")
        data.update(trials=budget.trials, patience=budget.patience, max_hours=budget.max_hours)
        data["confirm"]["max_runs"] = budget.confirm_max_runs
        return SearchConfig.model_validate(data)

    def design_dump(self) -> dict[str, Any]:
        """The search as its design: everything but its budget, which may change on resume."""
        data = self.model_dump(mode="json", exclude={"trials", "patience", "max_hours"})
        del data["confirm"]["max_runs"]
        return data

    @property
    def runs_per_cell(self) -> int:
        """The most runs one cell's search makes: its trials, the re-measurements of its
        incumbents (at most one per trial), then its race."""
        race = self.confirm.max_runs if self.confirm.top else 0
        return 2 * self.trials + race

    def space_size(self) -> int | None:
        """How many distinct points the space has; None when a dimension is continuous."""
        size = 1
        for dimension in self.space.values():
            values = dimension if isinstance(dimension, list) else dimension.grid()
            if values is None:
                return None
            size *= len(values)
        return size


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def flatten_space(space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted keys, as in `sweep:`, but a range mapping is a value."""
    flat: dict[str, Any] = {}
    for key, value in space.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and not set(value) <= RANGE_KEYS:
            flat.update(flatten_space(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat
