"""Statistics over cycles, on inputs whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llenergymeasure.results.stats import CV_FLAG_PCT, ratio_of_means, summarise


def test_constant_readings_have_zero_spread_and_a_point_interval() -> None:
    s = summarise([2.5, 2.5, 2.5, 2.5])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high, s.cv_pct) == (4, 2.5, 0.0, 2.5, 2.5, 0.0)


def test_sample_std_and_cv() -> None:
    s = summarise([9.0, 10.0, 11.0])
    assert s.mean == pytest.approx(10.0)
    assert s.std == pytest.approx(1.0)  # ddof=1
    assert s.cv_pct == pytest.approx(10.0)
    assert s.cv_pct > CV_FLAG_PCT


def test_two_readings_bootstrap_interval_spans_them() -> None:
    # Resampled means of [a, b] are a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4, so the
    # 2.5th and 97.5th percentiles are exactly a and b.
    s = summarise([1.0, 3.0])
    assert (s.ci_low, s.ci_high) == (1.0, 3.0)
    assert s.ci_half_width == 1.0


def test_bootstrap_matches_normal_theory_for_many_readings() -> None:
    rng = np.random.default_rng(123)
    values = rng.normal(100.0, 10.0, size=400)
    s = summarise(values.tolist())
    half = 1.96 * values.std(ddof=0) / math.sqrt(values.size)
    assert s.ci_low == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert s.ci_high == pytest.approx(values.mean() + half, abs=0.1 * half)


def test_bootstrap_is_seeded() -> None:
    values = np.random.default_rng(7).normal(50.0, 5.0, size=12).tolist()
    assert summarise(values) == summarise(values)
    assert summarise(values, seed=1) != summarise(values, seed=2)


def test_nulls_are_left_out_never_taken_as_zero() -> None:
    s = summarise([1.0, None, 3.0, float("nan")])
    assert s.n == 2
    assert s.mean == 2.0


def test_one_reading_has_no_spread_or_interval() -> None:
    s = summarise([7.0])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high, s.cv_pct) == (1, 7.0, None, None, None, None)


def test_no_reading_gives_no_figure() -> None:
    s = summarise([None, None])
    assert s.n == 0
    assert s.mean is None and s.ci_half_width is None


def test_ratio_of_constant_means_is_exact() -> None:
    r = ratio_of_means([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert (r.ratio, r.ci_low, r.ci_high) == (0.5, 0.5, 0.5)


def test_ratio_interval_covers_the_ratio_and_is_not_degenerate() -> None:
    r = ratio_of_means([10.0, 11.0, 9.0, 10.5], [20.0, 22.0, 18.0, 21.0])
    assert r.ratio == pytest.approx(2.0)
    assert r.ci_low < 2.0 < r.ci_high


def test_ratio_without_reference_is_null() -> None:
    assert ratio_of_means([None], [1.0]).ratio is None
    assert ratio_of_means([0.0, 0.0], [1.0, 2.0]).ratio is None
    single = ratio_of_means([2.0], [3.0])
    assert single.ratio == 1.5 and single.ci_low is None


def test_the_instrument_widens_the_ci_in_quadrature_on_known_inputs() -> None:
    from llenergymeasure.results.stats import Z95, summarise, with_instrument

    values = [10.0, 10.2, 9.8, 10.1, 9.9]
    u = [0.3, 0.4, 0.3, 0.4, 0.3]
    boot = summarise(values)
    combined = with_instrument(values, u)
    u_mean = math.sqrt(sum(x * x for x in u)) / 5
    assert combined.instrument_u == pytest.approx(u_mean)
    s = combined.summary
    assert s.mean - s.ci_low == pytest.approx(math.hypot(boot.mean - boot.ci_low, Z95 * u_mean))
    assert s.ci_high - s.mean == pytest.approx(math.hypot(boot.ci_high - boot.mean, Z95 * u_mean))
    half_boot = (boot.ci_high - boot.ci_low) / 2
    share = (Z95 * u_mean) ** 2 / ((Z95 * u_mean) ** 2 + half_boot**2) * 100
    assert combined.instrument_share_pct == pytest.approx(share)
    # a run without its uncertainty: the bootstrap alone, said so by a null instrument_u
    partial = with_instrument(values, [*u[:4], None])
    assert partial.instrument_u is None and partial.summary == boot
    # one run: no interval at all (the spread between runs is unknown)
    single = with_instrument([10.0], [0.3])
    assert single.summary.ci_low is None and single.instrument_u is None
