"""Goodput and the attribution of energy to requests."""

from __future__ import annotations

import pytest

from helpers.serving import request_record
from llenergymeasure.contract.serving import ServingSLO
from llenergymeasure.experiment.serving import figures
from llenergymeasure.experiment.serving.window import SteadyState


def test_goodput_and_attribution_on_known_requests():
    window = SteadyState(0.0, 10.0, 4, 4.0, 3.6)
    fast = [request_record(k, 1.0 + k, 2.0 + k) for k in range(4)]  # ttft 0.25 s, e2e 1 s
    slow = [request_record(10 + k, 1.0 + k, 4.0 + k) for k in range(2)]  # ttft 0.75 s, e2e 3 s
    failed = request_record(20, 1.0, 2.0, error="HTTP 500")
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
