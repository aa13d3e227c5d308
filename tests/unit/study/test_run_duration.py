"""One duration model for offline and serving runs: the estimate by phase and the timeout it
derives."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from llenergymeasure.config.study import (
    TIMEOUT_ESTIMATE_FACTOR,
    TIMEOUT_SLACK_S,
    ExecutionConfig,
)
from llenergymeasure.contract.backends import BACKEND_TABLE, spec_of
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.serving_stages import FindMaxRate
from llenergymeasure.experiment.serving.rate_search import RateSearch
from llenergymeasure.study import estimate_run
from llenergymeasure.study.run_duration import (
    DECODE_STEP_GUESS_S,
    TRACE_UNKNOWN,
    RunEstimate,
    most_rate_probes,
)

STEP_S = DECODE_STEP_GUESS_S["gpu"]
SLO = {"ttft_ms": 500}


def serving(section: dict[str, Any], **experiment: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"model": "m", "backend": "vllm", "mode": "serving", "serving": section, **experiment}
    )


def load_s(estimate: RunEstimate) -> float:
    """The load: everything after the server start and the baseline."""
    return estimate.warmup_s + estimate.measured_s + estimate.drain_s


def test_a_long_serving_run_gets_a_timeout_above_its_duration() -> None:
    config = serving({"duration_s": 7200, "request_rate": 2})
    estimate = estimate_run(config)
    assert estimate.measured_s == 7200
    assert estimate.startup_s == spec_of("vllm").server_start_guess_s
    timeout = ExecutionConfig().timeout_for(estimate.total_s)
    assert timeout == math.ceil(TIMEOUT_ESTIMATE_FACTOR * estimate.total_s + TIMEOUT_SLACK_S)
    assert timeout > TIMEOUT_ESTIMATE_FACTOR * 7200


def test_a_request_count_lasts_requests_over_rate_then_the_drain() -> None:
    config = serving({"n_requests": 600, "request_rate": 4, "warmup_requests": 40})
    estimate = estimate_run(config)
    assert math.isclose(estimate.warmup_s, 40 / 4)
    assert math.isclose(estimate.warmup_s + estimate.measured_s, 600 / 4)
    assert math.isclose(estimate.drain_s, 128 * STEP_S)  # the last request's answer
    assert estimate.unknown is None


def test_duration_and_count_first_to_end_wins() -> None:
    by_count = estimate_run(serving({"n_requests": 100, "request_rate": 1, "duration_s": 500}))
    by_time = estimate_run(serving({"n_requests": 100, "request_rate": 1, "duration_s": 50}))
    assert by_count.measured_s == 100
    assert by_time.measured_s == 50


def test_a_backlog_drains_through_the_concurrency() -> None:
    section = {"n_requests": 10, "request_rate": "inf", "max_concurrency": 2}
    estimate = estimate_run(serving(section, max_new_tokens=10))
    assert estimate.warmup_s + estimate.measured_s == 0  # everything sent at once
    assert math.isclose(estimate.drain_s, 5 * 10 * STEP_S)  # 5 rounds of 2


def test_a_session_drains_its_remaining_turns() -> None:
    section = {
        "n_requests": 8,
        "request_rate": 1,
        "endpoint": "chat",
        "sessions": {"turns": 4, "think_time_s": 3},
    }
    estimate = estimate_run(serving(section, max_new_tokens=10))
    assert math.isclose(estimate.measured_s, 2)  # 2 sessions' first turns at 1/s
    assert math.isclose(estimate.drain_s, 4 * 10 * STEP_S + 3 * 3)


def test_a_staged_run_is_the_sum_of_its_stages() -> None:
    stages = [
        {"request_rate": 1, "n_requests": 30, "warmup_requests": 5},
        {"request_rate": 8, "duration_s": 120},
        {"request_rate": "inf", "n_requests": 600},
    ]
    staged = estimate_run(serving({"stages": stages}))
    alone = [estimate_run(serving(stage)) for stage in stages]
    assert math.isclose(load_s(staged), sum(load_s(e) for e in alone))
    assert math.isclose(staged.warmup_s, sum(e.warmup_s for e in alone))
    assert math.isclose(staged.drain_s, sum(e.drain_s for e in alone))
    assert staged.startup_s == alone[0].startup_s  # one server start for all
    assert "3 stages" in staged.method


def test_a_rate_search_covers_its_most_probes_each_at_its_longest() -> None:
    search = {"low": 1, "high": 16, "max_probes": 20}
    config = serving({"n_requests": 200, "slo": SLO, "find_max_rate": search})
    probes = most_rate_probes(FindMaxRate.model_validate(search))
    at_low = estimate_run(serving({"n_requests": 200, "request_rate": 1, "slo": SLO}))
    at_high = estimate_run(serving({"n_requests": 200, "request_rate": 16, "slo": SLO}))
    estimate = estimate_run(config)
    assert math.isclose(load_s(estimate), probes * max(load_s(at_low), load_s(at_high)))
    assert load_s(estimate) >= probes * 200 / 1  # every probe as long as the slowest rate's
    assert f"at most {probes} stages" in estimate.method


@pytest.mark.parametrize(
    "spec",
    [
        {"low": 1, "high": 8},
        {"low": 1, "high": 2, "tolerance": 0.5, "max_probes": 32},
        {"low": 0.5, "high": 300, "growth": 10, "tolerance": 0.05, "max_probes": 32},
        {"low": 2, "high": 64, "growth": 1.5, "tolerance": 0.2, "max_probes": 32},
        {"low": 1, "high": 100, "growth": 3, "tolerance": 0.01, "max_probes": 32},
    ],
)
def test_no_rate_search_runs_more_probes_than_the_bound(spec: dict[str, float]) -> None:
    """The search's own code, told adversarial verdicts (met or not, any margin), never probes
    more than `most_rate_probes` says, and the bound is below max_probes where the bounds are
    close."""
    bound_spec = FindMaxRate.model_validate(spec)
    bound = most_rate_probes(bound_spec)
    draw = random.Random(0)
    most = 0
    for _ in range(2000):
        search = RateSearch(bound_spec)
        answer = draw.uniform(bound_spec.low * 0.5, bound_spec.high * 1.5)
        while (rate := search.next_rate()) is not None:
            met = rate <= answer if draw.random() < 0.8 else draw.random() < 0.5
            margin = draw.choice([None, draw.uniform(-1, 0.01)])
            if margin is not None:
                margin = abs(margin) if met else -abs(margin) - 1e-6
            search.tell(rate, met, margin)
        most = max(most, len(search.verdicts))
    assert most <= bound
    assert most >= 2  # the searches did probe and narrow


def test_the_bound_is_reached_by_a_search_that_always_just_misses() -> None:
    """Up to `high`, which fails; then every probe lands at the top of the middle half (a
    failed margin just below zero) and fails: the bracket shrinks by 3/4 each time."""
    spec = FindMaxRate(low=1, high=8, tolerance=0.1, max_probes=32)
    search = RateSearch(spec)
    while (rate := search.next_rate()) is not None:
        met = rate < spec.high and not search.first_failed
        search.tell(rate, met, 1.0 if met else -1e-9)
    assert len(search.verdicts) == most_rate_probes(spec)


def test_close_bounds_need_fewer_probes_than_max_probes() -> None:
    assert most_rate_probes(FindMaxRate(low=1, high=2, tolerance=0.5)) < 12
    assert most_rate_probes(FindMaxRate(low=1, high=1000, tolerance=0.01)) == 12


def test_a_trace_without_duration_names_what_it_leaves_out() -> None:
    trace = {"source": "trace", "path": "t.csv"}
    unbounded = estimate_run(serving({"n_requests": 50}, prompts=trace))
    assert unbounded.unknown == TRACE_UNKNOWN
    bounded = estimate_run(serving({"duration_s": 600}, prompts=trace))
    assert bounded.unknown is None and bounded.measured_s == 600


def test_offline_keeps_its_model() -> None:
    estimate = estimate_run(ExperimentConfig(model="m", backend="vllm", n_prompts=100))
    assert estimate.startup_s == spec_of("vllm").startup_guess_s
    assert estimate.drain_s == 0 and estimate.unknown is None
    assert estimate.method.startswith("offline")


def test_every_backend_with_a_server_has_a_start_guess() -> None:
    for spec in BACKEND_TABLE.values():
        assert (spec.server_start_guess_s is not None) == (spec.no_server_reason is None)
