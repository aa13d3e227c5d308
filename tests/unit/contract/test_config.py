"""ExperimentConfig: defaults, strictness, backend sections, cross-field checks, round trip."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from helpers.factories import run_context
from llenergymeasure.contract import ExperimentConfig, RunRequest
from llenergymeasure.contract.serving import ServingConfig, ServingSLO


def make(**fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": "m", **fields})


def test_defaults_fill_the_backend_section() -> None:
    config = make()
    assert config.backend == "pytorch"
    assert config.pytorch is not None and config.pytorch.batch_size == 1
    assert config.vllm is None and config.tensorrt is None
    assert config.fixed_output_length is True
    assert config.decoding.greedy
    assert make(backend="vllm").vllm is not None


def test_unknown_keys_are_rejected_at_every_level() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        make(max_new_token=3)
    with pytest.raises(ValidationError):
        make(pytorch={"batchsize": 2})


def test_section_must_match_backend() -> None:
    with pytest.raises(ValidationError, match="backend is 'pytorch'"):
        make(vllm={"max_num_seqs": 8})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "vllm", "gpu_count": 2}, "must equal gpu_count"),
        ({"backend": "tensorrt", "tensorrt": {"tp_size": 2}}, "must equal gpu_count"),
        ({"backend": "vllm", "gpu_count": 0, "vllm": {"tensor_parallel_size": 0}}, "greater"),
        ({"gpu_count": 0, "pytorch": {"load_in_4bit": True}}, "needs a GPU"),
        ({"pytorch": {"load_in_4bit": True, "load_in_8bit": True}}, "mutually exclusive"),
        ({"decoding": {"top_p": 0.5}}, "greedy"),
        (
            {
                "prompts": {
                    "source": "synthetic",
                    "input_length": {"distribution": "fixed", "tokens": 4096},
                }
            },
            "exceed",
        ),
        ({"warmup": {"min_batches": 5, "max_batches": 2}}, "must not exceed"),
    ],
)
def test_cross_field_checks_say_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(**fields)


def test_json_round_trip_is_identity() -> None:
    config = make(
        backend="vllm",
        precision="fp16",
        prompts={"source": "jsonl", "path": "/data/p.jsonl"},
        decoding={"temperature": 0.7, "top_p": 0.9},
        vllm={"max_num_seqs": 64, "quantization": "awq"},
    )
    again = ExperimentConfig.model_validate_json(config.model_dump_json())
    assert again == config


def test_run_request_wraps_config_and_context() -> None:
    context = run_context()
    request = RunRequest(config=make(), context=context)
    again = RunRequest.model_validate_json(request.model_dump_json())
    assert again == request
    assert again.schema_version >= 1


def test_every_figure_with_a_reason_sibling_is_checked_by_one_validator() -> None:
    from pydantic import ValidationError as Invalid

    from llenergymeasure.contract.result import Energy, Flops, Memory, value_reason_pairs

    assert value_reason_pairs(Memory) == (
        "peak_allocated_mb",
        "peak_reserved_mb",
        "nvml_peak_used_mb",
    )
    assert len(value_reason_pairs(Energy)) == 21
    assert value_reason_pairs(Flops) == ("total", "per_output_token")
    fields = {"parameters": 1, "total": 1.0, "per_output_token": None, "method": "m"}
    with pytest.raises(Invalid, match="per_output_token and per_output_token_reason are both null"):
        Flops.model_validate(fields)
    with pytest.raises(Invalid, match="total and total_reason are both set"):
        Flops.model_validate({**fields, "per_output_token": 1.0, "total_reason": "x"})
    Flops.model_validate({**fields, "per_output_token_reason": "no output tokens"})


def test_serving_config_is_checked_with_one_message_per_mistake():
    with pytest.raises(ValidationError, match="n_requests or duration_s"):
        ExperimentConfig(model="m", mode="serving", serving={})
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


def test_a_serving_run_sends_at_most_a_million_requests() -> None:
    def serving(**load: object) -> ExperimentConfig:
        return ExperimentConfig.model_validate(
            {"model": "m", "backend": "vllm", "mode": "serving", "serving": load}
        )

    with pytest.raises(ValueError, match="above the 1,000,000 a serving run may send"):
        serving(request_rate=1e9, duration_s=3600)
    with pytest.raises(ValueError, match="less than or equal to 1000000"):
        serving(n_requests=10**7)
    assert serving(request_rate=100, duration_s=600).serving.duration_s == 600


def test_thermal_warmup_must_be_able_to_judge_and_is_offline_only() -> None:
    assert make(warmup={"thermal_max_s": 60}).warmup.thermal_window_s == 10.0
    with pytest.raises(ValidationError, match="could never be judged steady"):
        make(warmup={"thermal_max_s": 5, "thermal_window_s": 10})
    with pytest.raises(ValidationError, match=r"warmup\.thermal_max_s is for offline mode"):
        make(mode="serving", serving={"n_requests": 10}, warmup={"thermal_max_s": 60})
