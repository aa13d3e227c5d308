"""The steady state: from the end of the ramp to the drain, and none under overload."""

from __future__ import annotations

import pytest

from helpers.serving import request_record
from llenergymeasure.experiment.serving.window import steady_state


def test_the_steady_state_runs_from_the_end_of_the_ramp_to_the_drain():
    # one request a second, each 3 s long: 1, 2, then 3 in flight until the last send at 9 s
    records = [request_record(k, float(k), k + 3.0) for k in range(10)]
    window = steady_state(records, 0.9, smooth_s=1.0)
    assert window.level == pytest.approx(3.0) and window.threshold == pytest.approx(2.7)
    # the 1 s average reaches 2.7 at t = 2.7 (on a grid of 9 s / 200); the drain is left out
    assert window.start_s == pytest.approx(2.7, abs=0.05) and window.end_s == 9.0
    assert window.peak_in_flight == 3
    warm = [request_record(k, float(k), k + 3.0, warmup=k < 4) for k in range(10)]
    assert steady_state(warm, 0.9, smooth_s=1.0).start_s == 4.0  # from the first measured send


def test_light_load_keeps_its_steady_state():
    # a request every 0.25 s lasting 0.05 s: in flight flickers between 0 and 1
    records = [request_record(k, 0.25 * k, 0.25 * k + 0.05) for k in range(200)]
    window = steady_state(records, 0.9, smooth_s=2.0)
    assert window.level == pytest.approx(0.2, rel=0.02)
    assert window.start_s < 2.5 and window.end_s == pytest.approx(49.75)


def test_all_at_once_steady_state_ends_when_the_count_falls_below_the_fraction_of_peak():
    records = [request_record(k, 0.0, 5.0 + k) for k in range(10)]
    window = steady_state(records, 0.9, smooth_s=1.0)
    assert (window.start_s, window.end_s, window.threshold) == (0.0, 6.0, 9.0)


def test_an_overloaded_server_has_no_steady_state_and_says_so():
    # a request every 0.1 s, each answered 1 s after the previous answer: the queue only grows
    records = [request_record(k, 0.1 * k, 1.0 * (k + 1)) for k in range(50)]
    window = steady_state(records, 0.9, smooth_s=1.0)
    assert not window.reached and window.end_s == pytest.approx(4.9)
    steady = [
        request_record(k, 0.1 * k, 0.1 * k + 1.0) for k in range(50)
    ]  # keeps up: 10 in flight
    assert steady_state(steady, 0.9, smooth_s=1.0).reached
