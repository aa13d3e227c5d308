"""Serving mode's pure parts: the arrival processes (statistics of 10 000 seeded draws), the
steady-state rule, goodput and energy attribution on known inputs, the counter window, the
config's validation, and the vLLM server's command line."""

from __future__ import annotations

import itertools
import statistics

import pytest
from pydantic import ValidationError

from llenergymeasure.contract.config import ExperimentConfig, ServingConfig, ServingSLO
from llenergymeasure.energy.arithmetic import counter_window_j
from llenergymeasure.runner_entry.serving import figures
from llenergymeasure.runner_entry.serving.arrivals import send_times
from llenergymeasure.runner_entry.serving.records import RequestRecord
from llenergymeasure.runner_entry.serving.servers import cli_flags
from llenergymeasure.runner_entry.serving.window import SteadyState, steady_state
from llenergymeasure.study.expand import serving_problem

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


def _record(k, sent, end, tokens=4, warmup=False, error=None) -> RequestRecord:
    step = (end - sent) / tokens
    return RequestRecord(
        index=k,
        scheduled_s=sent,
        warmup=warmup,
        input_tokens=8,
        sent_s=sent,
        released_s=sent,
        token_times_s=[sent + step * (i + 1) for i in range(tokens)],
        end_s=end,
        output_tokens=tokens,
        error=error,
    )


def test_the_steady_state_runs_from_the_end_of_the_ramp_to_the_drain():
    # one request a second, each 3 s long: 1, 2, then 3 in flight until the last send at 9 s
    records = [_record(k, float(k), k + 3.0) for k in range(10)]
    window = steady_state(records, 0.9, smooth_s=1.0)
    assert window.level == pytest.approx(3.0) and window.threshold == pytest.approx(2.7)
    # the 1 s average reaches 2.7 at t = 2.7 (on a grid of 9 s / 200); the drain is left out
    assert window.start_s == pytest.approx(2.7, abs=0.05) and window.end_s == 9.0
    assert window.peak_in_flight == 3
    warm = [_record(k, float(k), k + 3.0, warmup=k < 4) for k in range(10)]
    assert steady_state(warm, 0.9, smooth_s=1.0).start_s == 4.0  # from the first measured send


def test_light_load_keeps_its_steady_state():
    # a request every 0.25 s lasting 0.05 s: in flight flickers between 0 and 1
    records = [_record(k, 0.25 * k, 0.25 * k + 0.05) for k in range(200)]
    window = steady_state(records, 0.9, smooth_s=2.0)
    assert window.level == pytest.approx(0.2, rel=0.02)
    assert window.start_s < 2.5 and window.end_s == pytest.approx(49.75)


def test_all_at_once_steady_state_ends_when_the_count_falls_below_the_fraction_of_peak():
    records = [_record(k, 0.0, 5.0 + k) for k in range(10)]
    window = steady_state(records, 0.9, smooth_s=1.0)
    assert (window.start_s, window.end_s, window.threshold) == (0.0, 6.0, 9.0)


def test_goodput_and_attribution_on_known_requests():
    window = SteadyState(0.0, 10.0, 4, 4.0, 3.6)
    fast = [_record(k, 1.0 + k, 2.0 + k) for k in range(4)]  # ttft 0.25 s, e2e 1 s
    slow = [_record(10 + k, 1.0 + k, 4.0 + k) for k in range(2)]  # ttft 0.75 s, e2e 3 s
    failed = _record(20, 1.0, 2.0, error="HTTP 500")
    records = [*fast, *slow, failed]
    slo = ServingSLO(ttft_ms=500, e2e_ms=2000)
    assert [figures.meets_slo(r, slo) for r in records] == [True] * 4 + [False] * 2 + [None]
    good = figures.goodput(records, window, slo)
    assert (good.completed_in_window, good.good_in_window) == (6, 4)
    assert good.requests_per_s == pytest.approx(0.4) and good.fraction == pytest.approx(4 / 6)
    share = figures.attribution(records, window, slo)
    assert share.tokens == 24 and share.slo_tokens == 16 and share.mean_tokens == 4
    assert figures.per(120.0, share.tokens, "x") == (5.0, None)  # J per output token
    assert figures.per(120.0, share.slo_tokens, "x") == (7.5, None)  # per SLO-meeting token
    assert figures.per(None, 3, "no GPU") == (None, "no GPU")
    half = SteadyState(0.0, 3.0, 4, 4.0, 3.6)  # cuts the later requests' tokens
    assert figures.tokens_in(slow[1], half.start_s, half.end_s) == 1
    assert figures.goodput(records, window, ServingSLO()).good_in_window == 6  # no SLO: all


def test_counter_window_interpolates_at_the_edges_and_refuses_a_reset():
    times, counters = [0.0, 1.0, 2.0], [1000.0, 3000.0, 7000.0]  # 2 W, then 4 W
    assert counter_window_j(times, counters, 0.5, 1.5) == pytest.approx(3.0)  # 1 J + 2 J
    assert counter_window_j(times, counters, 0.0, 2.5) is None  # not bracketed
    assert counter_window_j(times, [1000.0, 500.0, 900.0], 0.0, 2.0) is None


def test_serving_config_is_checked_with_one_message_per_mistake():
    with pytest.raises(ValidationError, match="n_requests or duration_s"):
        ServingConfig()
    with pytest.raises(ValidationError, match="greater than 0"):
        ServingConfig(request_rate=-1, n_requests=3)
    with pytest.raises(ValidationError, match="leaves none"):
        ServingConfig(n_requests=3, warmup_requests=3)
    with pytest.raises(ValidationError, match="extra"):
        ServingSLO(ttft=3)  # not a latency this knows
    assert ServingConfig(request_rate=float("inf"), n_requests=2).request_rate == "inf"
    assert ServingConfig(request_rate="Inf", n_requests=2).rate == float("inf")
    with pytest.raises(ValidationError, match="mode is 'offline'"):
        ExperimentConfig(model="m", serving={"n_requests": 2})
    with pytest.raises(ValidationError, match="needs a 'serving:' section"):
        ExperimentConfig(model="m", mode="serving")


def test_a_backend_without_a_server_is_refused_with_its_reason():
    pytorch = ExperimentConfig(model="m", mode="serving", serving={"n_requests": 2})
    assert "fastapi and uvicorn" in serving_problem(pytorch)
    vllm = pytorch.model_copy(update={"backend": "vllm"})
    assert serving_problem(vllm) is None
    assert serving_problem(ExperimentConfig(model="m")) is None


def test_engine_arguments_become_the_servers_flags():
    flags = cli_flags(
        {
            "model": "m",
            "max_num_seqs": 8,
            "enforce_eager": True,
            "enable_prefix_caching": False,
            "quantization": None,
        },
        skip=("model",),
    )
    assert flags == ["--max-num-seqs", "8", "--enforce-eager", "--no-enable-prefix-caching"]


def test_send_lag_is_the_generators_own_delay_not_the_caps_wait():
    late = RequestRecord(index=0, scheduled_s=1.0, warmup=False, input_tokens=8, sent_s=1.2)
    assert late.send_lag_s == pytest.approx(0.2)  # no cap: sent after its arrival time
    capped = RequestRecord(
        index=1, scheduled_s=1.0, warmup=False, input_tokens=8, released_s=3.0, sent_s=3.001
    )
    assert capped.send_lag_s == pytest.approx(0.001)  # the wait for a free place is not lag


def test_an_overloaded_server_has_no_steady_state_and_says_so():
    # a request every 0.1 s, each answered 1 s after the previous answer: the queue only grows
    records = [_record(k, 0.1 * k, 1.0 * (k + 1)) for k in range(50)]
    window = steady_state(records, 0.9, smooth_s=1.0)
    assert not window.reached and window.end_s == pytest.approx(4.9)
    steady = [_record(k, 0.1 * k, 0.1 * k + 1.0) for k in range(50)]  # keeps up: 10 in flight
    assert steady_state(steady, 0.9, smooth_s=1.0).reached
