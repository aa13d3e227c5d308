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


Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class Combined:
    """A summary whose CI also holds the instrument's uncertainty (`with_instrument`)."""

    summary: Summary
    instrument_u: float | None  # standard uncertainty of the mean from the instrument alone
    instrument_share_pct: float | None  # of the CI's squared half-width, %


def with_instrument(
    values: Sequence[float | None], uncertainties: Sequence[float | None]
) -> Combined:
    """The cycles' bootstrap CI widened by the instrument: each side's half-width combined in
    quadrature with 1.96 x u, where u = sqrt(sum u_i^2) / n is the standard uncertainty of the
    mean of n runs, each with its own standard uncertainty u_i (independent between runs).
    Conservative: the spread between cycles already holds part of the same noise. Runs without
    an uncertainty leave the CI as the bootstrap's alone (instrument_u null)."""
    pairs = [
        (float(v), float(u))
        for v, u in zip(values, uncertainties, strict=True)
        if v is not None and u is not None and math.isfinite(float(v)) and math.isfinite(float(u))
    ]
    summary = summarise(values)
    if summary.n < 2 or len(pairs) != summary.n or summary.mean is None:
        return Combined(summary, None, None)
    assert summary.ci_low is not None and summary.ci_high is not None
    u = math.sqrt(sum(ui * ui for _, ui in pairs)) / len(pairs)
    spread = Z95 * u
    low = summary.mean - math.hypot(summary.mean - summary.ci_low, spread)
    high = summary.mean + math.hypot(summary.ci_high - summary.mean, spread)
    half = (high - low) / 2
    boot_half = (summary.ci_high - summary.ci_low) / 2
    share = spread**2 / (spread**2 + boot_half**2) * 100 if half > 0 else None
    widened = Summary(summary.n, summary.mean, summary.std, low, high, summary.cv_pct)
    return Combined(widened, u, share)


def scaled_uncertainties(
    values: Sequence[float | None],
    energies: Sequence[float | None],
    energy_u: Sequence[float | None],
) -> list[float | None]:
    """Each run's uncertainty of a figure derived from its energy: |value| x u(energy) /
    |energy| (the same relative uncertainty); null where any of the three is missing."""
    out: list[float | None] = []
    for value, energy, u in zip(values, energies, energy_u, strict=True):
        known = all(x is not None and math.isfinite(float(x)) for x in (value, energy, u))
        if known and energy:
            out.append(abs(float(value)) * float(u) / abs(float(energy)))  # type: ignore[arg-type]
        else:
            out.append(None)
    return out


def _relative_u_of_mean(values: Sequence[float | None], u: Sequence[float | None]) -> float | None:
    pairs = [(v, ui) for v, ui in zip(values, u, strict=True) if v is not None]
    if not pairs or any(ui is None for _, ui in pairs):
        return None
    mean = sum(float(v) for v, _ in pairs) / len(pairs)  # type: ignore[arg-type]
    if mean == 0:
        return None
    return math.sqrt(sum(float(ui) ** 2 for _, ui in pairs)) / len(pairs) / abs(mean)  # type: ignore[arg-type]


def ratio_with_instrument(
    ratio: Ratio,
    a: tuple[Sequence[float | None], Sequence[float | None]],
    b: tuple[Sequence[float | None], Sequence[float | None]],
) -> Ratio:
    """`ratio_of_means`'s interval widened as `with_instrument` widens a mean's: each side in
    quadrature with 1.96 x ratio x the two means' relative instrument uncertainties combined;
    `a`, `b`: (values, their uncertainties). Unchanged where a side lacks uncertainties."""
    rel_a, rel_b = _relative_u_of_mean(*a), _relative_u_of_mean(*b)
    if ratio.ratio is None or ratio.ci_low is None or ratio.ci_high is None:
        return ratio
    if rel_a is None or rel_b is None:
        return ratio
    spread = Z95 * abs(ratio.ratio) * math.hypot(rel_a, rel_b)
    low = ratio.ratio - math.hypot(ratio.ratio - ratio.ci_low, spread)
    high = ratio.ratio + math.hypot(ratio.ci_high - ratio.ratio, spread)
    return Ratio(ratio.ratio, low, high)
