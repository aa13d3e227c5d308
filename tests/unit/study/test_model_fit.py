"""Plan-time fit of a run to its model's context (local model folders) and to vllm.max_model_len."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.study import expand
from llenergymeasure.study.model_fit import context_from_config, fit_problem


def _prompts(tokens: int) -> dict[str, Any]:
    return {"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": tokens}}


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    folder = tmp_path / "ctx512"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 512}))
    return folder


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"max_position_embeddings": 512}, (512, "max_position_embeddings")),
        ({"n_positions": 1024, "max_position_embeddings": 2048}, (1024, "n_positions")),
        ({"text_config": {"max_position_embeddings": 4096}}, (4096, "max_position_embeddings")),
        (
            {"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 2.0}},
            (8192, "max_position_embeddings x rope_scaling.factor 2.0"),
        ),
        (
            {
                "max_position_embeddings": 131072,
                "rope_scaling": {"rope_type": "llama3", "factor": 8},
            },
            (131072, "max_position_embeddings"),
        ),
        (
            {
                "max_position_embeddings": 131072,
                "rope_scaling": {
                    "rope_type": "yarn",
                    "factor": 4.0,
                    "original_max_position_embeddings": 32768,
                },
            },
            (131072, "max_position_embeddings x rope_scaling.factor 4.0"),
        ),
        ({"hidden_size": 64}, None),
    ],
)
def test_context_is_read_as_vllm_derives_it(config: dict, expected: tuple | None) -> None:
    assert context_from_config(config) == expected


def test_short_prompts_fit_a_short_context_whatever_max_input_tokens(small_model: Path) -> None:
    # The case that used to fail inside vLLM: 32-token prompts, max_input_tokens 2048 (default).
    config = ExperimentConfig(model=str(small_model), max_new_tokens=16, prompts=_prompts(32))
    assert config.max_input_tokens == 2048
    assert fit_problem(config, small_model.parent) is None


def test_a_run_longer_than_the_context_is_named(small_model: Path) -> None:
    config = ExperimentConfig(model="./ctx512", max_new_tokens=16, prompts=_prompts(500))
    reason = fit_problem(config, small_model.parent)
    assert reason is not None
    assert "needs 516 tokens of context (longest prompt 500 + max_new_tokens 16)" in reason
    assert "the model has 512 (max_position_embeddings in" in reason and "ctx512" in reason


def test_uniform_lengths_are_judged_by_their_actual_longest_draw(small_model: Path) -> None:
    spec = {"source": "synthetic", "seed": 3, "input_length": {"distribution": "uniform"}}
    spec["input_length"] |= {"min": 10, "max": 600}
    config = ExperimentConfig(model=str(small_model), n_prompts=5, max_new_tokens=8, prompts=spec)
    longest, exact = config.prompts.longest_input_tokens(config.n_prompts, config.max_input_tokens)
    assert exact and longest == max(
        config.prompts.input_lengths(config.n_prompts, config.max_input_tokens)
    )
    assert (fit_problem(config, small_model.parent) is None) == (longest + 8 <= 512)


def test_file_prompts_are_left_to_the_container(small_model: Path) -> None:
    config = ExperimentConfig(
        model=str(small_model), prompts={"source": "jsonl", "path": "p.jsonl"}
    )
    assert config.prompts.longest_input_tokens(config.n_prompts, config.max_input_tokens) == (
        2048,
        False,
    )
    assert fit_problem(config, small_model.parent) is None


def test_hub_ids_are_not_judged_at_plan_time(tmp_path: Path) -> None:
    config = ExperimentConfig(model="org/model", prompts=_prompts(2000), max_input_tokens=2048)
    assert fit_problem(config, tmp_path) is None


def test_vllm_max_model_len_must_hold_the_run_and_fit_the_model(small_model: Path) -> None:
    def vllm(max_model_len: int, tokens: int) -> ExperimentConfig:
        return ExperimentConfig(
            model=str(small_model),
            backend="vllm",
            max_new_tokens=128,
            prompts=_prompts(tokens),
            vllm={"max_model_len": max_model_len},
        )

    assert fit_problem(vllm(256, 64), small_model.parent) is None
    short = fit_problem(vllm(100, 64), small_model.parent)
    assert short == (
        "vllm.max_model_len (100) is shorter than longest prompt 64 + max_new_tokens 128 = 192"
    )
    long = fit_problem(vllm(1024, 64), small_model.parent)
    assert long is not None and "exceeds the model's context (512" in long
    # without a readable model, only the first rule applies
    assert fit_problem(vllm(100, 64), None) == short


def test_expand_skips_what_does_not_fit_with_its_reason(small_model: Path) -> None:
    study = StudyConfig.model_validate(
        {
            "name": "t",
            "defaults": {"model": "./ctx512", "max_new_tokens": 16},
            "sweep": {"prompts.input_length.tokens": [32, 400, 600]},
        }
    )
    plan = expand(study, small_model.parent)
    assert [c.config.prompts.input_length.tokens for c in plan.configs] == [32, 400]
    (skipped,) = plan.skipped
    assert skipped.swept == {"prompts.input_length.tokens": 600}
    assert "needs 616 tokens of context" in skipped.reason
