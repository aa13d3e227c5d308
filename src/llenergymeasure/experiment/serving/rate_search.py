"""The rates `serving.find_max_rate` probes, chosen as it goes from each stage's verdict.

Up: `low`, then x `growth` each time a stage met the SLOs, capped at `high`. Once a stage did
not: the highest rate that met (`met`) and the lowest that did not (`failed`) bracket the
answer, and each next rate lies between them: by false position on the SLO margin (goodput
fraction - bound) where both margins are known, kept in the middle half of the bracket so it
always shrinks, else their geometric mean. Done when (failed - met) <= tolerance x met, when
`low` failed, when `high` met, or after `max_probes` stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llenergymeasure.contract.serving_stages import FindMaxRate

METHOD = (
    "rates probed up from low by x growth until a stage did not meet the SLOs (or high did), "
    "then between the highest that met and the lowest that did not (false position on the "
    "goodput margin, kept in the middle half; else the geometric mean) until they are within "
    "tolerance; a stage meets the SLOs when its goodput fraction over the steady state is at "
    "least the bound and none of its measured requests failed; one server start for all"
)


@dataclass(frozen=True)
class Verdict:
    rate: float
    met: bool
    margin: float | None  # goodput fraction - bound; None where the stage gave none


class RateSearch:
    def __init__(self, spec: FindMaxRate) -> None:
        self.spec = spec
        self.verdicts: list[Verdict] = []

    @property
    def best(self) -> Verdict | None:
        met = [v for v in self.verdicts if v.met]
        return max(met, key=lambda v: v.rate) if met else None

    @property
    def first_failed(self) -> Verdict | None:
        """The lowest rate above the best one that did not meet the SLOs."""
        floor = self.best.rate if self.best is not None else 0.0
        failed = [v for v in self.verdicts if not v.met and v.rate > floor]
        return min(failed, key=lambda v: v.rate) if failed else None

    def tell(self, rate: float, met: bool, margin: float | None) -> None:
        self.verdicts.append(Verdict(rate, met, margin))

    def next_rate(self) -> float | None:
        """The next rate to probe, or None when the search is done."""
        spec = self.spec
        if not self.verdicts:
            return spec.low
        if len(self.verdicts) >= spec.max_probes:
            return None
        best, failed = self.best, self.first_failed
        if best is None:
            return None  # low did not meet the SLOs
        if failed is None:
            if best.rate >= spec.high:
                return None
            return min(best.rate * spec.growth, spec.high)
        if failed.rate - best.rate <= spec.tolerance * best.rate:
            return None
        return _between(best, failed)

    @property
    def done_reason(self) -> str:
        """Why the search stopped, for the result."""
        spec, best, failed = self.spec, self.best, self.first_failed
        if best is None:
            return f"the lowest rate probed ({spec.low:g} req/s) did not meet the SLOs"
        if failed is None and best.rate >= spec.high:
            return (
                f"the highest rate allowed ({spec.high:g} req/s) met the SLOs: the answer may "
                "lie above it"
            )
        if failed is not None and failed.rate - best.rate <= spec.tolerance * best.rate:
            return "within tolerance"
        above = f"between {best.rate:g} and {failed.rate:g}" if failed else f"above {best.rate:g}"
        return f"stopped after max_probes ({spec.max_probes}) stages: the answer lies {above} req/s"


def _between(met: Verdict, failed: Verdict) -> float:
    low, high = met.rate, failed.rate
    if met.margin is not None and failed.margin is not None and met.margin > failed.margin:
        guess = low + (high - low) * met.margin / (met.margin - failed.margin)
        quarter = (high - low) / 4
        return min(max(guess, low + quarter), high - quarter)
    return math.sqrt(low * high)
