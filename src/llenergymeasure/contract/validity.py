"""Validity of an energy figure: the reason codes, each with its threshold, in one table (the
container judges by it, `energy.validity`; the host adds what only it sees), and the models a
result records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from llenergymeasure.contract.config import ExperimentConfig, Strict

ValidityCode = Literal[
    "not_judged",
    "energy_unavailable",
    "integral_only",
    "counter_reset",
    "sample_gap",
    "counter_integral_mismatch",
    "window_short",
    "power_out_of_range",
    "throttled",
    "temperature_drift",
    "foreign_processes",
    "mig_slice",
    "gpu_identity",
    "host_shared",
]


class ValidityReason(Strict):
    code: ValidityCode
    detail: str = Field(description="What was seen, against which threshold.")


class Validity(Strict):
    """Whether a group of energy figures can be trusted as a reading of this run's work: valid
    exactly when no rule of `RULES` fired."""

    valid: bool
    reasons: list[ValidityReason] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid_without_reasons(self) -> Validity:
        if self.valid == bool(self.reasons):
            raise ValueError("valid exactly when there is no reason")
        return self

    @classmethod
    def of(cls, reasons: list[ValidityReason]) -> Validity:
        return cls(valid=not reasons, reasons=reasons)

    @classmethod
    def not_judged(cls) -> Validity:
        """A result recorded before llem judged validity."""
        detail = "recorded before validity was judged"
        return cls.of([ValidityReason(code="not_judged", detail=detail)])

    def plus(self, reason: ValidityReason) -> Validity:
        return Validity.of([*self.reasons, reason])


MAX_GAP_INTERVALS = 3.0  # a gap longer than this many sampler intervals ...
MAX_GAP_S = 1.0  # ... or than this, whichever is shorter
MAX_COUNTER_INTEGRAL_DEVIATION = 0.05  # |counter / integral - 1|
MIN_WINDOW_S = 10.0
MIN_WINDOW_UPDATES = 2  # counter updates a window must span at least
IDLE_FLOOR = 0.9  # mean power below this x the idle baseline
# A GPU held at its limit averages at the limit, read by a meter good to a few per cent.
LIMIT_CEILING = 1.05  # mean power above this x the power limit
DRIFT_C = 3.0  # temperature rise over the window's second half


@dataclass(frozen=True)
class Rule:
    threshold: str
    meaning: str


RULES: dict[ValidityCode, Rule] = {
    "not_judged": Rule("-", "recorded by a version that did not judge validity"),
    "energy_unavailable": Rule("-", "no energy reading: the figure is null"),
    "integral_only": Rule(
        "no NVML energy counter", "the energy is the sampled power's integral, not the counter"
    ),
    "counter_reset": Rule(
        "counter went backwards", "the energy counter was reset or wrapped inside the window"
    ),
    "sample_gap": Rule(
        f"largest gap > min({MAX_GAP_INTERVALS:g} x the sampler interval, {MAX_GAP_S:g} s)",
        "power samples missing: throttling and power in the gap are unseen",
    ),
    "counter_integral_mismatch": Rule(
        f"|counter / integral - 1| > {MAX_COUNTER_INTEGRAL_DEVIATION:.0%}",
        "the two NVML readings of one window disagree",
    ),
    "window_short": Rule(
        f"window < max({MIN_WINDOW_S:g} s, {MIN_WINDOW_UPDATES} counter updates)",
        "the window's edge error is a large share of its energy",
    ),
    "power_out_of_range": Rule(
        f"mean power < {IDLE_FLOOR:g} x idle baseline or > {LIMIT_CEILING:g} x the power limit",
        "a reading no working GPU gives: the meter or the attribution is off",
    ),
    "throttled": Rule(
        "NVML thermal, hardware-slowdown or power-brake throttle reasons seen",
        "clocks were held down by heat or the board: the figure is of a degraded GPU (the "
        "software power cap is not a fault: the limit is recorded with the run)",
    ),
    "temperature_drift": Rule(
        f"rise > {DRIFT_C:g} C over the window's second half",
        "the GPU was still warming: power (leakage) was not steady",
    ),
    "foreign_processes": Rule(
        "another compute process on a measured GPU",
        "the GPU's energy includes work that is not this run's",
    ),
    "mig_slice": Rule("MIG mode on a measured GPU", "NVML meters the physical GPU, not the slice"),
    "gpu_identity": Rule(
        "metered GPUs differ from those granted", "the energy may be another GPU's"
    ),
    "host_shared": Rule(
        "other runs on the host in the window",
        "RAPL meters the whole CPU package and DRAM: not this run's alone",
    ),
}


def rule_reason(code: ValidityCode, detail: str) -> ValidityReason:
    """A reason with what was seen (`detail`) and the rule's threshold."""
    return ValidityReason(code=code, detail=f"{detail} ({RULES[code].threshold})")


def short_window_note(configs: Iterable[ExperimentConfig]) -> str | None:
    """Plan time: offline GPU runs asked for a window the `window_short` rule will not accept
    (a window runs whole passes, so it may still come out long enough)."""
    short = sorted(
        {
            c.min_window_s
            for c in configs
            if c.mode == "offline" and c.gpu_count > 0 and c.min_window_s < MIN_WINDOW_S
        }
    )
    if not short:
        return None
    asked = ", ".join(f"{w:g}" for w in short)
    return (
        f"min_window_s {asked} s is under {MIN_WINDOW_S:g} s: those GPU runs' energy may be "
        "marked window_short (not valid); a longer window is a figure a reviewer can trust"
    )
