"""Arrival processes: the rate and the spread of each, and an infinite rate."""

from __future__ import annotations

import itertools
import statistics

import pytest

from llenergymeasure.contract.serving import ServingConfig
from llenergymeasure.experiment.serving.arrivals import send_times

N = 10_000


def _gaps(**serving) -> list[float]:
    times = send_times(ServingConfig(n_requests=N + 1, **serving), N + 1)
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize(
    "serving, cv",
    [
        ({"arrival": "poisson"}, 1.0),
        ({"arrival": "gamma", "burstiness": 0.25}, 2.0),  # CV = 1 / sqrt(shape)
        ({"arrival": "gamma", "burstiness": 4.0}, 0.5),
        ({"arrival": "constant"}, 0.0),
    ],
)
def test_arrivals_have_the_rate_and_the_spread_of_their_process(serving, cv):
    gaps = _gaps(request_rate=8.0, seed=3, **serving)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 8.0, rel=0.05)  # 10 000 draws: the mean within 5 %
    assert statistics.pstdev(gaps) / mean == pytest.approx(cv, abs=0.06)
    assert _gaps(request_rate=8.0, seed=3, **serving) == gaps  # seeded: the same again
    if cv:
        assert _gaps(request_rate=8.0, seed=4, **serving) != gaps


def test_infinite_rate_sends_everything_at_once_and_duration_cuts_the_sequence():
    assert send_times(ServingConfig(request_rate="inf", n_requests=5), 5) == [0.0] * 5
    times = send_times(ServingConfig(request_rate=10.0, duration_s=2.0, arrival="constant"), 100)
    assert len(times) == 20 and times[-1] < 2.0
