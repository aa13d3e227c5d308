"""Which prompt sources, modes and serving loads go together: one message per mistake, and the
output length filled in when left unset."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llenergymeasure.contract.config import ExperimentConfig


def serving(prompts: dict[str, Any] | None = None, **load: Any) -> ExperimentConfig:
    fields: dict[str, Any] = {"model": "m", "backend": "vllm", "mode": "serving"}
    if prompts is not None:
        fields["prompts"] = prompts
    return ExperimentConfig(**fields, serving={"n_requests": 10, **load})


TRACE = {"source": "trace", "path": "t.csv"}


def test_output_length_is_resolved_from_the_source() -> None:
    assert serving().serving.output_length == "fixed"
    assert serving({"source": "sharegpt", "path": "s.json"}).serving.output_length == (
        "from_dataset"
    )
    jsonl = {"source": "jsonl", "path": "p.jsonl", "output_length_field": "answer"}
    assert serving(jsonl).serving.output_length == "from_dataset"
    drawn = serving(output_length={"distribution": "uniform", "min": 4, "max": 64})
    assert drawn.serving.output_length.max == 64
    # the filled-in value is what is recorded and hashed
    assert '"output_length":"fixed"' in serving().model_dump_json()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (lambda: serving(output_length="from_dataset"), "synthetic gives no output lengths"),
        (
            lambda: serving(output_length={"distribution": "fixed", "tokens": 500}),
            "exceed max_new_tokens",
        ),
        (lambda: serving(sessions={"turns": 3}), "set serving.endpoint: chat"),
        (
            lambda: serving({"source": "chat_jsonl", "path": "c.jsonl"}),
            "conversations: set serving.endpoint: chat",
        ),
        (lambda: serving(TRACE, request_rate=4), "remove serving.request_rate"),
        (
            lambda: serving(TRACE, endpoint="chat", sessions={"turns": 2}),
            "cannot also be sessions",
        ),
        (
            lambda: ExperimentConfig(model="m", prompts=TRACE),
            "trace is a serving load: set mode: serving",
        ),
        (
            lambda: ExperimentConfig(
                model="m",
                prompts={"source": "jsonl", "path": "p", "output_length_field": "n"},
            ),
            "offline runs generate max_new_tokens",
        ),
        (
            lambda: serving(
                {
                    "source": "shared_prefix",
                    "prefix_tokens": 2000,
                    "input_length": {"distribution": "fixed", "tokens": 100},
                }
            ),
            r"2000 prefix \+ up to 100 tokens exceed max_input_tokens",
        ),
        (
            lambda: ExperimentConfig(
                model="m",
                backend="vllm",
                mode="serving",
                n_prompts=2,
                serving={"n_requests": 4, "endpoint": "chat", "sessions": {"turns": 3}},
            ),
            "fewer than one session's turns",
        ),
    ],
)
def test_combinations_that_cannot_run_are_named(config: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config()


def test_a_trace_bounds_its_own_load() -> None:
    config = ExperimentConfig(
        model="m", backend="vllm", mode="serving", prompts=TRACE, serving={"endpoint": "chat"}
    )
    assert config.serving.n_requests is None and config.serving.duration_s is None
    assert config.serving.output_length == "from_dataset"
    # the recorded config, read back as the container reads it, is still valid
    assert ExperimentConfig.model_validate_json(config.model_dump_json()) == config
