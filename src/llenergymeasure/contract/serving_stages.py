"""Several loads against one server start: a list of stages, or stages chosen as it goes to find
the highest request rate that meets the SLOs (`serving.stages`, `serving.find_max_rate`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from llenergymeasure.contract.fields import (
    CombinationError,
    NonNegativeFloat,
    PositiveInt,
    Strict,
)


def inf_spellings(value: object) -> object:
    """YAML's .inf is a float; "Inf"/"INF" are strings: all mean 'inf'."""
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return "inf"
    return value


RequestRate = Annotated[
    Annotated[float, Field(gt=0, allow_inf_nan=False)] | Literal["inf"],
    BeforeValidator(inf_spellings),
]
MAX_RATE_PROBES = 32


class Stage(Strict):
    """One stage: its own rate and length, its own warm-up, steady state, energy and figures.
    A key left unset takes the serving section's value."""

    request_rate: RequestRate = Field(description="Target arrivals per second, or 'inf'.")
    max_concurrency: PositiveInt | None = Field(None, description="Most requests in flight.")
    n_requests: PositiveInt | None = Field(None, description="Requests sent in this stage.")
    duration_s: float | None = Field(None, gt=0, description="Sending time of this stage, s.")
    warmup_requests: int | None = Field(None, ge=0, description="Its first requests, excluded.")
    warmup_s: NonNegativeFloat | None = Field(None, description="Its first seconds, excluded.")


class FindMaxRate(Strict):
    """The highest request rate whose stage meets every SLO: probe up from `low` by `growth`
    until a stage fails (or `high` passes), then narrow the gap between the last rate that met
    the SLOs and the first that did not until it is within `tolerance` of the lower one."""

    low: float = Field(gt=0, description="First rate probed, req/s.")
    high: float = Field(gt=0, description="Highest rate probed, req/s.")
    tolerance: float = Field(
        0.1, gt=0, description="Stop when (failed - met) / met is at most this."
    )
    growth: float = Field(2.0, gt=1, description="Factor between rates while probing up.")
    goodput_bound: float = Field(
        0.99,
        gt=0,
        le=1,
        description="A stage meets the SLOs when at least this share of its requests completed "
        "in the steady state met every SLO (and none failed).",
    )
    max_probes: int = Field(
        12, ge=2, le=MAX_RATE_PROBES, description="Most stages the search runs."
    )
    stop_overloaded: bool = Field(
        True,
        description="Stop a stage early once it clearly cannot meet the SLOs (requests "
        "already past an SLO beyond what the bound allows, or requests waiting still climbing).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> FindMaxRate:
        if self.high <= self.low:
            raise CombinationError(
                f"find_max_rate.high ({self.high:g}) must be above low ({self.low:g})",
                "find_max_rate.low",
                "find_max_rate.high",
            )
        return self
