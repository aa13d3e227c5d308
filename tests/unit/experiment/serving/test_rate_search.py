"""find_max_rate's choice of rates against servers of known capacity: the rate it settles on
met the SLOs, the lowest failed probe above it is within the tolerance, and the bounds end it."""

from __future__ import annotations

import pytest

from llenergymeasure.contract.serving_stages import FindMaxRate
from llenergymeasure.experiment.serving.rate_search import RateSearch


def _search(capacity: float, margin: bool = True, **spec: float) -> RateSearch:
    """Run the search against a server that meets the SLOs up to `capacity` req/s; the goodput
    margin falls linearly through zero there."""
    search = RateSearch(FindMaxRate.model_validate({"low": 1, "high": 64, **spec}))
    while (rate := search.next_rate()) is not None:
        met = rate <= capacity
        search.tell(rate, met, (capacity - rate) / capacity if margin else None)
    return search


@pytest.mark.parametrize("capacity", [1.3, 5.0, 7.7, 23.0, 50.0])
@pytest.mark.parametrize("margin", [True, False])
def test_it_brackets_the_capacity_within_the_tolerance(capacity, margin):
    search = _search(capacity, margin, tolerance=0.1)
    best, failed = search.best, search.first_failed
    assert best is not None and failed is not None
    assert best.rate <= capacity < failed.rate
    assert failed.rate - best.rate <= 0.1 * best.rate
    assert search.done_reason == "within tolerance"
    assert [v.rate for v in search.verdicts][:2] == [1, 2]  # up geometrically first


def test_the_margin_narrows_faster_than_halving():
    with_margin = _search(23.0, True, tolerance=0.02)
    halving = _search(23.0, False, tolerance=0.02)
    assert len(with_margin.verdicts) < len(halving.verdicts)


def test_the_bounds_end_it_with_the_reason():
    too_slow = _search(0.5)
    assert too_slow.best is None and [v.rate for v in too_slow.verdicts] == [1]
    assert "lowest rate probed (1 req/s) did not meet" in too_slow.done_reason
    too_fast = _search(1000.0)
    assert too_fast.best.rate == 64 and too_fast.first_failed is None
    assert [v.rate for v in too_fast.verdicts] == [1, 2, 4, 8, 16, 32, 64]
    assert "answer may lie above it" in too_fast.done_reason


def test_max_probes_stops_it_with_the_bracket_named():
    search = _search(23.0, False, tolerance=0.001, max_probes=7)
    assert len(search.verdicts) == 7
    assert "stopped after max_probes (7)" in search.done_reason
    assert search.best.rate <= 23.0 < search.first_failed.rate


def test_max_probes_before_any_failure_says_the_answer_lies_above():
    search = _search(1000.0, max_probes=4)
    assert [v.rate for v in search.verdicts] == [1, 2, 4, 8] and search.next_rate() is None
    assert (
        search.done_reason == "stopped after max_probes (4) stages: the answer lies above 8 req/s"
    )
