"""One summary cell, read once for every view: a metric's mean over cycles with the half-width
of its 95 % CI, or n/a with the reason (numbered as a footnote by `Footnotes`). The terminal
table and the HTML report render the same `MetricCell`s their own way."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported by the commands that read results, not by every one
    import pandas as pd

NOT_REPORTED = "not reported"


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any, digits: int = 4) -> str:
    """A number to `digits` significant figures."""
    return f"{float(value):.{digits}g}"


def interval(mean: float | None, low: float | None, high: float | None) -> str:
    """`mean [low, high]` (a 95 % CI), the mean alone without one, n/a without a mean."""
    if mean is None:
        return "n/a"
    if low is None or high is None:
        return number(mean)
    return f"{number(mean)} [{number(low)}, {number(high)}]"


@dataclass(frozen=True)
class MetricCell:
    mean: float | None
    half_width: float | None  # of the 95 % CI; None with one completed cycle
    reason: str | None  # why the mean is n/a

    @classmethod
    def of(cls, row: pd.Series, metric: str) -> MetricCell:
        mean = row[f"{metric}.mean"]
        if missing(mean):
            return cls(None, None, row[f"{metric}.na_reason"] or NOT_REPORTED)
        low, high = row[f"{metric}.ci95_low"], row[f"{metric}.ci95_high"]
        half = None if missing(low) else float(high - low) / 2
        return cls(float(mean), half, None)


@dataclass
class Footnotes:
    """Each distinct n/a reason gets one number, in order of first use."""

    reasons: list[str] = field(default_factory=list)

    def number(self, reason: str) -> int:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return self.reasons.index(reason) + 1
