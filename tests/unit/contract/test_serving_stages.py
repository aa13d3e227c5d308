"""`serving.stages` and `serving.find_max_rate`: what a stage inherits, and each combination
refused at plan time with its reason."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.serving import ServingConfig

SEARCH = {"low": 1, "high": 16}


def _config(serving: dict, **top: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"model": "m", "backend": "vllm", "mode": "serving", "serving": serving, **top}
    )


def test_a_stage_takes_the_sections_values_where_it_sets_none():
    serving = ServingConfig.model_validate(
        {
            "duration_s": 30,
            "max_concurrency": 8,
            "slo": {"ttft_ms": 200},
            "stages": [
                {"request_rate": 1},
                {"request_rate": "inf", "n_requests": 100, "max_concurrency": 64},
            ],
        }
    )
    first, last = (serving.at_stage(stage) for stage in serving.stages)
    assert (first.rate, first.duration_s, first.max_concurrency) == (1.0, 30, 8)
    assert (last.request_rate, last.n_requests, last.max_concurrency) == ("inf", 100, 64)
    assert first.slo.ttft_ms == last.slo.ttft_ms == 200
    assert first.stages is None and first.find_max_rate is None
    assert serving.at_rate(4.5).rate == 4.5


def test_a_recorded_staged_config_validates_again():
    config = _config({"duration_s": 5, "slo": {"ttft_ms": 100}, "find_max_rate": SEARCH})
    again = ExperimentConfig.model_validate_json(config.model_dump_json())
    assert again.serving == config.serving


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ({"stages": [{"request_rate": 1}]}, "stage 0 never ends"),
        (
            {"duration_s": 5, "stages": [{"request_rate": 1}, {"request_rate": "inf"}]},
            "stage 1: request_rate 'inf' sends every request at once: give n_requests",
        ),
        ({"duration_s": 5, "request_rate": 2, "stages": [{"request_rate": 1}]}, "remove"),
        ({"duration_s": 5, "find_max_rate": SEARCH}, "give serving.slo"),
        ({"slo": {"ttft_ms": 9}, "find_max_rate": SEARCH}, "each find_max_rate stage never ends"),
        (
            {"duration_s": 5, "slo": {"ttft_ms": 9}, "find_max_rate": {"low": 8, "high": 2}},
            "find_max_rate.high (2) must be above low (8)",
        ),
        (
            {
                "duration_s": 5,
                "slo": {"ttft_ms": 9},
                "find_max_rate": SEARCH,
                "stages": [{"request_rate": 1}],
            },
            "not both",
        ),
        ({"stages": []}, "at least 1 item"),
    ],
)
def test_combinations_that_cannot_run_are_refused(serving, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        _config(serving)


def test_a_trace_gives_the_arrivals_so_it_takes_no_stages(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,8,2\n")
    with pytest.raises(ValidationError, match=r"cannot also be serving\.stages"):
        _config(
            {"stages": [{"request_rate": 1, "n_requests": 4}]},
            prompts={"source": "trace", "path": str(trace)},
        )
