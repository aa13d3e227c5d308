"""Shared fixtures: a tiny random-weight causal LM built once per session, and work folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from helpers.workdirs import write_workdir

# Property tests: 100 examples by default; `HYPOTHESIS_PROFILE=ci` (what .ci/run sets) 1,000.
settings.register_profile("default", max_examples=100)
settings.register_profile("ci", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2-layer, hidden-64 Llama-style model with a locally trained tokenizer; world-readable."""
    pytest.importorskip("torch")
    from llenergymeasure.experiment.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture
def make_workdir(tmp_path: Path, tiny_model_dir: Path) -> Callable[..., Path]:
    """`make_workdir(**overrides)` -> a fresh work folder for the tiny model."""
    counter = iter(range(1_000))

    def make(**config: Any) -> Path:
        model = config.pop("model", tiny_model_dir)
        return write_workdir(tmp_path / f"work{next(counter)}", model, **config)

    return make
