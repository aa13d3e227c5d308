"""Energy arithmetic on recorded reading sequences."""

from __future__ import annotations

import math

import pytest

from llenergymeasure.energy.arithmetic import (
    adjusted_energy_j,
    baseline_power_w,
    counter_delta,
    counter_window_j,
    sum_devices,
    trapezoid_j,
    window_energy_j,
)


def test_counter_delta_monotonic() -> None:
    assert counter_delta(1_000.0, 4_500.0) == 3_500.0


def test_rapl_wraparound_at_max_energy_range() -> None:
    # A package counter near its 262143328850 uJ range wraps during the window.
    wrap = 262_143_328_850.0
    start, end = wrap - 2_000_000.0, 3_000_000.0
    assert counter_delta(start, end, wrap_at=wrap) == 5_000_000.0


def test_nvml_counter_reset_is_unknown_not_negative() -> None:
    assert counter_delta(9_000_000.0, 1_200.0) is None


def test_trapezoid_constant_and_ramp() -> None:
    assert trapezoid_j([0.0, 1.0, 2.0], [100.0, 100.0, 100.0]) == 200.0
    # Ramp 0 -> 200 W over 2 s: triangle of 200 J.
    assert trapezoid_j([0.0, 1.0, 2.0], [0.0, 100.0, 200.0]) == 200.0


def test_trapezoid_rejects_time_going_back() -> None:
    with pytest.raises(ValueError):
        trapezoid_j([0.0, 2.0, 1.0], [1.0, 1.0, 1.0])


def test_window_integral_interpolates_edges() -> None:
    # Samples every 0.1 s of a 0 -> 100 W ramp over 1 s; window [0.25, 0.75].
    times = [k / 10 for k in range(11)]
    powers = [100.0 * t for t in times]
    energy = window_energy_j(times, powers, 0.25, 0.75)
    assert energy is not None
    # Exact integral of 100 t over [0.25, 0.75] = 50 * (0.5625 - 0.0625) = 25 J.
    assert math.isclose(energy, 25.0, rel_tol=1e-9)


def test_window_integral_needs_samples_spanning_the_window() -> None:
    assert window_energy_j([0.5, 0.6], [10.0, 10.0], 0.0, 1.0) is None
    assert window_energy_j([0.0], [10.0], 0.0, 0.0) is None


def test_baseline_subtraction() -> None:
    baseline = baseline_power_w(energy_j=700.0, duration_s=10.0)
    assert baseline == 70.0
    assert adjusted_energy_j(raw_j=3_000.0, baseline_w=baseline, duration_s=20.0) == 1_600.0
    # Noise is shown, not hidden.
    assert adjusted_energy_j(raw_j=100.0, baseline_w=70.0, duration_s=2.0) == -40.0


def test_multi_gpu_sum_and_unknown_device() -> None:
    assert sum_devices([120.5, 130.5, 99.0]) == 350.0
    assert sum_devices([120.5, None]) is None
    assert sum_devices([]) is None


def test_counter_window_interpolates_at_the_edges_and_refuses_a_reset():
    times, counters = [0.0, 1.0, 2.0], [1000.0, 3000.0, 7000.0]  # 2 W, then 4 W
    assert counter_window_j(times, counters, 0.5, 1.5) == pytest.approx(3.0)  # 1 J + 2 J
    assert counter_window_j(times, counters, 0.0, 2.5) is None  # not bracketed
    assert counter_window_j(times, [1000.0, 500.0, 900.0], 0.0, 2.0) is None
