"""`energy_between`: one source rule for every window (offline's, serving's steady state, its
slices): the counter at the edges, else the counter interpolated between samples, else the
power integral, else null with why."""

from __future__ import annotations

import pytest

from llenergymeasure.energy.between import EdgeCounters, energy_between
from llenergymeasure.energy.gpus import GpuSample
from llenergymeasure.energy.sampler import Row


def _rows(power_w: float, counter: bool = True, reset_at: float | None = None) -> list[Row]:
    """GPU 0 at a constant power, sampled every 0.5 s from 0 to 10 s."""
    rows = []
    for k in range(21):
        t = 0.5 * k
        mj = power_w * t * 1000 if counter else None
        if mj is not None and reset_at is not None and t >= reset_at:
            mj -= power_w * reset_at * 1000 + 1
        rows.append(Row(t, t, "window", 0, GpuSample(power_w, None, None, None, None, None, mj)))
    return rows


def test_counter_read_at_the_edges_comes_first():
    found = energy_between(_rows(100.0), [0], 2.0, 4.0, edges=EdgeCounters([1000.0], [3000.0]))
    assert (found.source, found.per_gpu_j) == ("nvml_energy_counter", [2.0])


def test_a_window_chosen_after_the_fact_interpolates_the_sampled_counter():
    found = energy_between(_rows(100.0), [0], 2.25, 4.75)
    assert found.source == "nvml_energy_counter"
    assert found.per_gpu_j == [pytest.approx(250.0)]


def test_a_reset_counter_falls_back_to_the_power_integral_and_says_why():
    edges = EdgeCounters([5000.0], [10.0])  # went backwards: reset during the window
    found = energy_between(_rows(100.0), [0], 2.0, 4.0, edges=edges)
    assert (found.source, found.per_gpu_j) == ("nvml_power_integral", [pytest.approx(200.0)])
    interpolated = energy_between(_rows(100.0, reset_at=3.0), [0], 2.0, 4.0)
    assert interpolated.source == "nvml_power_integral"


def test_without_a_counter_the_integral_and_outside_the_samples_null_with_the_reason():
    found = energy_between(_rows(50.0, counter=False), [0], 1.0, 3.0)
    assert (found.source, found.per_gpu_j) == ("nvml_power_integral", [pytest.approx(100.0)])
    beyond = energy_between(_rows(50.0, counter=False), [0], 5.0, 11.0, no_counter="no counter")
    assert (beyond.source, beyond.per_gpu_j) == ("unavailable", None)
    assert beyond.reason == "no counter, and the power samples do not span the window"
    assert energy_between([], [], 0.0, 1.0).reason == "no GPU was metered"
