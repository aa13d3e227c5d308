"""Where things are inside an experiment's container, and the environment a backend needs.

The host mounts and sets these; the container reads them. Both halves import them from here.
"""

from __future__ import annotations

from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import ExperimentConfig

MODELS_DIR = "/llem/models"
"""Local model folders are mounted read-only under here: `<MODELS_DIR>/<hash8>-<name>`."""

PROMPTS_DIR = "/llem/prompts"
"""JSONL prompt files are mounted read-only under here: `<PROMPTS_DIR>/<hash8>-<name>`."""

HF_CACHE_DIR = "/llem/hf-cache"
"""The Hugging Face cache (HF_HOME inside the container)."""

ENGINE_CACHE_DIR = "/llem/engine-cache"
"""Compiled TensorRT-LLM engines, kept on the host across experiments."""

VLLM_MULTIPROCESSING_VAR = "VLLM_ENABLE_V1_MULTIPROCESSING"


def backend_environment(config: ExperimentConfig) -> dict[str, str]:
    """The environment an experiment's engine runs with: its backend's, plus what the
    experiment chose. The host sets it on the container; the experiment process sets it again
    before the engine is imported, so a run started by hand behaves the same."""
    environment = dict(spec_of(config.backend).environment)
    if config.vllm is not None:
        environment[VLLM_MULTIPROCESSING_VAR] = "1" if config.vllm.engine_multiprocessing else "0"
    return environment
