"""Statistics over cycles: mean, sample std, seeded percentile-bootstrap 95 % CI, CV.

The bootstrap is seeded so the same results always give the same interval. With few cycles
(under about 5) the percentile bootstrap covers less than its nominal 95 %: such intervals are
indicative, and a study meant for publication should run more cycles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CV_FLAG_PCT = 5.0


@dataclass(frozen=True)
class Summary:
    """A metric over cycles; figures are in the metric's own unit, `cv_pct` in %."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    cv_pct: float | None

    @property
    def ci_half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2


@dataclass(frozen=True)
class Ratio:
    """mean(b) / mean(a) with a bootstrap CI; null where it cannot be formed."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None


def clean(values: Sequence[float | None]) -> np.ndarray:
    """The finite readings; null (unmeasured) values are left out, never taken as 0."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return np.asarray(kept, dtype=float)


def bootstrap_means(
    values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Means of `resamples` resamples drawn with replacement."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, values.size, size=(resamples, values.size))
    return values[index].mean(axis=1)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def summarise(values: Sequence[float | None], seed: int = BOOTSTRAP_SEED) -> Summary:
    data = clean(values)
    n = int(data.size)
    if n == 0:
        return Summary(0, None, None, None, None, None)
    mean = float(data.mean())
    if n == 1:
        return Summary(1, mean, None, None, None, None)
    std = float(data.std(ddof=1))
    low, high = _interval(bootstrap_means(data, seed=seed))
    cv = std / abs(mean) * 100 if mean != 0 else None
    return Summary(n, mean, std, low, high, cv)


def ratio_of_means(
    a: Sequence[float | None], b: Sequence[float | None], seed: int = BOOTSTRAP_SEED
) -> Ratio:
    """mean(b) / mean(a); the CI resamples each side independently (unpaired cycles)."""
    xa, xb = clean(a), clean(b)
    if xa.size == 0 or xb.size == 0 or xa.mean() == 0:
        return Ratio(None, None, None)
    ratio = float(xb.mean() / xa.mean())
    if xa.size < 2 and xb.size < 2:
        return Ratio(ratio, None, None)
    means_a = bootstrap_means(xa, seed=seed)
    means_b = bootstrap_means(xb, seed=seed + 1)
    valid = means_a != 0
    low, high = _interval(means_b[valid] / means_a[valid])
    return Ratio(ratio, low, high)
