"""The uncertainty budget's terms on known inputs, and the counter's update period measured
from a synthesised fast poll."""

from __future__ import annotations

import math

import pytest

from llenergymeasure.energy.arithmetic import went_back
from llenergymeasure.energy.between import energy_between
from llenergymeasure.energy.gpus import GpuSample
from llenergymeasure.energy.sampler import Row
from llenergymeasure.energy.uncertainty import (
    BASELINE,
    EDGE,
    INTEGRAL_SAMPLING,
    Budget,
    baseline_j,
    baseline_sem_w,
    edge_j,
    integral_sampling_j,
    update_period_s,
)


def test_edge_term_is_one_update_of_energy_per_edge_uniform() -> None:
    # 300 W, a 100 ms counter: each edge up to 30 J, u = 30 / sqrt(3) per edge, two edges
    assert edge_j(300.0, 0.1) == pytest.approx(math.sqrt(2) * 30.0 / math.sqrt(3))
    assert edge_j(300.0, 0.0) == 0.0


def test_integral_sampling_term() -> None:
    assert integral_sampling_j([0.0, 1.0, 2.0], [100.0, 100.0, 100.0]) == 0.0
    # one step of 60 W over 0.5 s: |dp| dt / (2 sqrt 3)
    assert integral_sampling_j([0.0, 0.5], [100.0, 160.0]) == pytest.approx(
        60 * 0.5 / (2 * math.sqrt(3))
    )
    two = integral_sampling_j([0.0, 0.5, 1.0], [100.0, 160.0, 100.0])
    assert two == pytest.approx(math.sqrt(2) * 60 * 0.5 / (2 * math.sqrt(3)))


def test_baseline_term_is_the_idle_standard_error_over_the_window() -> None:
    powers = [79.0, 81.0] * 50  # 100 samples, 10 s of baseline, 1 s averaging: 10 independent
    sd = math.sqrt(sum((p - 80.0) ** 2 for p in powers) / 99)
    sem = baseline_sem_w(powers, 10.0, 1.0)
    assert sem == pytest.approx(sd / math.sqrt(10))
    assert baseline_j(sem, 30.0) == pytest.approx(sd / math.sqrt(10) * 30.0)
    assert baseline_sem_w([80.0], 10.0, 1.0) is None and baseline_j(None, 30.0) is None


def test_budget_combines_in_quadrature() -> None:
    budget = Budget({EDGE: 3.0, INTEGRAL_SAMPLING: 4.0, BASELINE: 12.0})
    assert budget.instrument_j == pytest.approx(5.0)
    assert budget.adjusted_j == pytest.approx(13.0)


def counter_poll(period_s: float, every_s: float, duration_s: float) -> tuple[list, list]:
    """A counter stepping every `period_s` (250 W), read every `every_s`."""
    times = [k * every_s for k in range(int(duration_s / every_s))]
    readings = [math.floor(t / period_s) * 250.0 * period_s * 1000 for t in times]
    return times, readings


@pytest.mark.parametrize("period", [0.02, 0.1, 0.25])
def test_update_period_measured_from_a_fast_poll(period: float) -> None:
    times, readings = counter_poll(period, 0.002, 2.0)
    assert update_period_s(times, readings) == pytest.approx(period, abs=0.003)


def test_update_period_needs_three_changes() -> None:
    times, readings = counter_poll(0.9, 0.002, 2.0)  # changes at 0.9 and 1.8 only
    assert update_period_s(times, readings) is None


def test_a_reset_inside_the_window_is_seen_outside_it_is_not() -> None:
    times = [0.0, 1.0, 2.0, 3.0, 4.0]
    counters = [1000.0, 2000.0, 10.0, 1010.0, 2010.0]
    assert went_back(times, counters, 0.5, 2.5)
    assert not went_back(times, counters, 2.5, 3.5)


def test_an_interpolated_counter_reset_falls_back_and_says_so() -> None:
    rows = [
        Row(t, 0.0, "window", 0, GpuSample(200.0, 40.0, None, None, None, 0, energy_mj=mj))
        for t, mj in [(0.0, 5000.0), (1.0, 205000.0), (2.0, 100.0), (3.0, 200100.0)]
    ]
    found = energy_between(rows, [0], 0.5, 2.5)
    assert found.source == "nvml_power_integral" and found.counter_reset
    assert found.per_gpu_j == pytest.approx([400.0])
