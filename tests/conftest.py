"""Shared fixtures: a tiny random-weight causal LM built once per session, and work folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import CONFIG_FILE


def write_workdir(root: Path, model: Path | str, **config: Any) -> Path:
    """A work folder holding a valid config.json for `model`, sized for fast tests.

    Keyword arguments override ExperimentConfig fields (nested dicts replace whole sections).
    """
    root.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {
        "model": str(model),
        "precision": "fp32",
        "gpu_count": 0,
        "n_prompts": 6,
        "max_new_tokens": 6,
        "prompts": {"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 12}},
        "baseline": {"duration_s": 0.1},
        "warmup": {"min_batches": 2, "max_batches": 4, "cv_window": 2, "cv_bound": 0.5},
        "min_window_s": 0.2,
        "pytorch": {"batch_size": 4},
    }
    fields.update(config)
    request = RunRequest.model_validate(
        {
            "config": fields,
            "context": {
                "study_id": "test-study",
                "study_name": "test",
                "run_id": "0000_deadbeef_c0",
                "run_index": 0,
                "config_hash": "deadbeef" * 8,
                "cycle": 0,
                "offline": True,
            },
        }
    )
    (root / CONFIG_FILE).write_text(json.dumps(request.model_dump(mode="json")))
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2-layer, hidden-64 Llama-style model with a locally trained tokenizer; world-readable."""
    pytest.importorskip("torch")
    from llenergymeasure.runner_entry.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture
def make_workdir(tmp_path: Path, tiny_model_dir: Path) -> Callable[..., Path]:
    """`make_workdir(**overrides)` -> a fresh work folder for the tiny model."""
    counter = iter(range(1_000))

    def make(**config: Any) -> Path:
        model = config.pop("model", tiny_model_dir)
        return write_workdir(tmp_path / f"work{next(counter)}", model, **config)

    return make
