"""Percentiles, latency summaries, token counting and the FLOPs estimate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llenergymeasure.backends.base import BatchOutput, ModelShape
from llenergymeasure.experiment.metrics import (
    coefficient_of_variation,
    flops,
    latency,
    percentile,
    request_flops,
    summarise,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=200), st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    ours = percentile(sorted(values), q)
    assert ours == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-6)


@given(st.lists(finite, min_size=1, max_size=200))
def test_summary_is_ordered(values: list[float]) -> None:
    s = summarise(values)
    assert s.min <= s.p50 <= s.p90 <= s.p99 <= s.max
    assert s.n == len(values)


def test_cv() -> None:
    assert coefficient_of_variation([2.0, 2.0, 2.0]) == 0.0
    assert coefficient_of_variation([1.0, 3.0]) == pytest.approx(0.5)


def test_latency_from_token_times() -> None:
    out = BatchOutput(
        output_tokens=[3, 1],
        request_latency_s=[0.5, 0.5],
        token_times_s=[[0.1, 0.15, 0.25], [0.1]],
    )
    lat = latency([out])
    assert lat.ttft_ms is not None and lat.ttft_ms.n == 2
    assert lat.ttft_ms.p50 == pytest.approx(100.0)
    assert lat.itl_ms is not None and lat.itl_ms.n == 2
    assert sorted([lat.itl_ms.min, lat.itl_ms.max]) == pytest.approx([50.0, 100.0])
    assert lat.request_ms.p50 == pytest.approx(500.0)


def test_latency_without_token_times_is_null_with_reason() -> None:
    out = BatchOutput([4], [0.2], [[]], token_times_reason="engine reports no token times")
    lat = latency([out])
    assert lat.ttft_ms is None and lat.ttft_ms_reason == "engine reports no token times"
    assert lat.itl_ms is None and lat.itl_ms_reason


SHAPE = ModelShape(parameters=1_000, matmul_parameters=800, layers=2, attention_dim=16)


def test_request_flops_by_hand() -> None:
    # L=3 prompt, G=2 generated: 3 + 1 processed tokens; contexts 1+2+3 then 4 -> 10.
    expected = 2 * 800 * 4 + 4 * 2 * 16 * 10
    assert request_flops(SHAPE, 3, 2) == expected
    assert request_flops(SHAPE, 3, 0) == 0


def test_flops_totals_and_per_token() -> None:
    f = flops(SHAPE, [(3, 2), (3, 2)])
    assert f.total == 2 * request_flops(SHAPE, 3, 2)
    assert f.per_output_token == pytest.approx(f.total / 4)
    assert flops(SHAPE, [(3, 0)]).per_output_token is None
