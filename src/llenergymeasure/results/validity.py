"""Whether a run's GPU energy reading can be used: the one rule every host reader applies (the
tables and `--valid-only`, `results compare`, the search, the plots' hollow markers, the audit
and the report).

The container judges its reading (`energy.validity`: a reason per rule of
`contract.validity.RULES` that fired; the host adds what only it sees). From that record a
run's GPU energy is one of:

- `valid`: read, and no rule fired;
- `not_valid`: read, and a rule fired; the reason codes say which (a throttled or shared GPU, a
  counter reset, ...);
- `no_verdict`: there is no reading (`energy_unavailable`: a CPU run, no NVML; every GPU
  figure is null with its reason), or the result predates validity (`not_judged`).

`--valid-only` (`llem results show`, `llem results compare`, the library's
`load_results(valid_only=True)`) leaves out exactly the `not_valid` runs. It keeps the runs
with no verdict: without a reading there is no energy figure to mislead (each is null with its
reason), and their throughput and latency stand; a result from before validity keeps the
figures it recorded. The search does not use a `not_valid` reading (`search.judge`).

A run's result and its flattened row (`flatten.run_rows`: one per stage of a staged serving
run) are judged by the same `verdict`, from the same codes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from llenergymeasure.contract.result import Energy
from llenergymeasure.contract.validity import ValidityReason
from llenergymeasure.results.cells import missing

# --valid-only in one sentence: the help of `results show` and `results compare`.
VALID_ONLY = (
    "Leave out the runs whose GPU energy was read and judged not valid (energy.validity); runs "
    "without a verdict (no reading: a CPU run) stay, with their throughput and latency"
)
Verdict = Literal["valid", "not_valid", "no_verdict"]
# The codes that pass no verdict on a reading: there is none, or it was never judged.
NO_READING = "energy_unavailable"
NOT_JUDGED = "not_judged"
# The flattened row's columns the rule reads (`flatten.section_columns`).
GPU_J = "energy.gpu_j"
CODES = "energy.validity.reasons"
DETAIL = "energy.validity.detail"


def verdict(measured: bool, codes: Collection[str]) -> Verdict:
    """The rule: whether the GPU energy was read (`measured`), and the reason codes recorded."""
    if not measured or NO_READING in codes:
        return "no_verdict"
    if set(codes) - {NOT_JUDGED}:
        return "not_valid"
    return "no_verdict" if NOT_JUDGED in codes else "valid"


@dataclass(frozen=True)
class GpuEnergyValidity:
    """A run's GPU energy judged by `verdict`, with the reasons it recorded."""

    verdict: Verdict
    measured: bool  # read (read with no verdict: a result from before validity was judged)
    codes: tuple[str, ...]  # every recorded reason's code, in order
    detail: str  # "code: what was seen (threshold); ...", "" when valid

    @property
    def not_valid(self) -> bool:
        return self.verdict == "not_valid"


def _judged(measured: bool, codes: tuple[str, ...], detail: str) -> GpuEnergyValidity:
    measured = measured and NO_READING not in codes
    return GpuEnergyValidity(verdict(measured, codes), measured, codes, detail)


def describe(reasons: list[ValidityReason]) -> str:
    """The reasons as one line: "code: detail; ..."."""
    return "; ".join(f"{reason.code}: {reason.detail}" for reason in reasons)


def gpu_energy_validity(energy: Energy) -> GpuEnergyValidity:
    """A result's (or one stage's) GPU energy judged."""
    codes = tuple(reason.code for reason in energy.validity.reasons)
    return _judged(energy.gpu_j is not None, codes, describe(energy.validity.reasons))


def row_validity(row: Mapping[str, Any]) -> GpuEnergyValidity:
    """A flattened row's GPU energy judged: the same rule over the codes the row carries."""
    text, detail = row.get(CODES), row.get(DETAIL)
    # a row without the column holds a result that recorded no validity
    codes = tuple(c for c in text.split(",") if c) if isinstance(text, str) else (NOT_JUDGED,)
    return _judged(not missing(row.get(GPU_J)), codes, detail if isinstance(detail, str) else "")
