"""An energy figure's instrument uncertainty budget: standard uncertainties in J, by term.

- edge: the counter moves in steps of one update period T, so each edge reading can be off by
  up to the energy of one update, P x T (P the window's mean power). Taken as the half-width of
  a uniform distribution, each edge contributes P x T / sqrt(3); the two edges are independent:
  u_edge = P x T x sqrt(2/3). For the integral, T is the power reading's own averaging period.
- integral_sampling (the integral only): between two samples power is taken as linear; the
  curve can lie anywhere within half the step, |dp| x dt / 2, uniform: |dp| x dt / (2 sqrt 3)
  per interval, the intervals independent.
- baseline (the adjusted figure only): the idle power's standard error (its samples' spread over
  sqrt of the independent readings in the baseline, one per averaging period), over the window.

Terms combine in quadrature (root sum of squares).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

EDGE = "edge"
INTEGRAL_SAMPLING = "integral_sampling"
BASELINE = "baseline"


@dataclass(frozen=True)
class Budget:
    terms_j: dict[str, float]

    @property
    def instrument_j(self) -> float:
        return math.hypot(*(v for k, v in self.terms_j.items() if k != BASELINE))

    @property
    def adjusted_j(self) -> float:
        return math.hypot(*self.terms_j.values())


def edge_j(mean_power_w: float, period_s: float) -> float:
    return abs(mean_power_w) * period_s * math.sqrt(2.0 / 3.0)


def integral_sampling_j(times_s: Sequence[float], powers_w: Sequence[float]) -> float:
    pairs = sorted(zip(times_s, powers_w, strict=True))
    terms = (
        abs(pb - pa) * (tb - ta) / (2 * math.sqrt(3))
        for (ta, pa), (tb, pb) in itertools.pairwise(pairs)
    )
    return math.sqrt(sum(t * t for t in terms))


def baseline_sem_w(powers_w: Sequence[float], baseline_s: float, period_s: float) -> float | None:
    """The idle power's standard error, W, over the baseline's independent samples (one per
    `period_s`); None with under two samples."""
    if len(powers_w) < 2 or baseline_s <= 0:
        return None
    independent = max(1.0, baseline_s / max(period_s, 1e-9))
    return statistics.stdev(powers_w) / math.sqrt(min(independent, len(powers_w)))


def baseline_j(sem_w: float | None, window_s: float) -> float | None:
    """The idle power's standard error carried over the window, J."""
    return sem_w * window_s if sem_w is not None else None


def update_period_s(times_s: Sequence[float], readings: Sequence[float]) -> float | None:
    """How often a cumulative counter changes: the median time between successive changes of a
    fast poll; None with fewer than three changes (two intervals)."""
    changes = [t for t, a, b in zip(times_s[1:], readings, readings[1:], strict=False) if b != a]
    if len(changes) < 3:
        return None
    return statistics.median(b - a for a, b in itertools.pairwise(changes))
