"""A search trial's load stopped once a latency constraint is settled against it: the test on
the requests so far, and how requests still in flight are counted."""

from __future__ import annotations

import math

import pytest

from llenergymeasure.contract.pruning import MIN_REQUESTS, LatencyBound, binomial_cdf
from llenergymeasure.experiment.serving.pruning import ConstraintPrune
from llenergymeasure.experiment.serving.records import RequestRecord


def record(index: int, ttft_s: float | None, end_s: float | None = None, **kw) -> RequestRecord:
    r = RequestRecord(index=index, scheduled_s=0.0, warmup=False, input_tokens=8, **kw)
    r.sent_s = 0.0
    if ttft_s is not None:
        r.token_times_s = [ttft_s, ttft_s + 0.01]
        r.output_tokens = 2
    r.end_s = end_s
    return r


def test_only_upper_bounds_on_per_request_quantiles_can_be_settled() -> None:
    assert LatencyBound.of("latency.ttft_ms.p99", "<=", 1.0) is not None
    assert LatencyBound.of("latency.request_ms.p50", "<", 100.0) is not None
    assert LatencyBound.of("serving.tpot_ms.p90", "<=", 5.0) is not None
    assert LatencyBound.of("latency.ttft_ms.mean", "<=", 1.0) is None  # a mean: not by count
    assert LatencyBound.of("latency.ttft_ms.p99", ">=", 1.0) is None
    assert LatencyBound.of("latency.itl_ms.p99", "<=", 1.0) is None  # per token, not request
    assert LatencyBound.of("throughput.output_tokens_per_s", "<=", 1.0) is None


def test_binomial_tail_matches_its_sum() -> None:
    n, p = 30, 0.9
    for k in (0, 5, 20, 29):
        exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
        assert binomial_cdf(k, n, p) == pytest.approx(exact, rel=1e-9)
    assert binomial_cdf(30, 30, p) == 1.0 and binomial_cdf(-1, 30, p) == 0.0
    assert 0 < binomial_cdf(0, 20_000, 0.99) < 1e-300 or binomial_cdf(0, 20_000, 0.99) == 0.0


def test_an_unmeetable_bound_is_settled_after_the_minimum_and_a_met_one_never() -> None:
    p99 = LatencyBound.of("latency.ttft_ms.p99", "<=", 1.0)
    assert p99.settled(0, MIN_REQUESTS - 1) is None  # too few to judge
    reason = p99.settled(0, MIN_REQUESTS)
    assert reason.startswith("pruned: latency.ttft_ms.p99 <= 1 cannot be met: 0 of 10")
    p90 = LatencyBound.of("latency.ttft_ms.p90", "<=", 100.0)
    assert p90.settled(90, 100) is None  # exactly at the quantile
    assert p90.settled(80, 100) is None  # unlucky, not settled at 1e-4
    assert p90.settled(60, 100) is not None


def test_requests_in_flight_count_for_the_bound_until_they_pass_it() -> None:
    bound = LatencyBound.of("latency.ttft_ms.p50", "<=", 500.0)
    records = [record(i, 0.8, 1.0) for i in range(6)]  # answered, 800 ms: past it
    records += [record(6 + i, None) for i in range(10)]  # waiting
    records.append(record(16, None, error="ConnectionResetError"))  # failed: left out
    warm = record(17, 5.0, 6.0)
    warm.warmup = True  # warm-up: left out
    records.append(warm)
    check = ConstraintPrune(records, [bound])
    assert check.count(bound, now_s=0.4) == (10, 16)  # waiting 400 ms: still within
    assert check.count(bound, now_s=0.6) == (0, 16)  # waiting 600 ms: past it
    assert check(0.4) is None  # 10 of 16 within: a median within 500 ms is plausible
    assert check(0.6).startswith("pruned: latency.ttft_ms.p50 <= 500")
