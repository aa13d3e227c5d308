"""Where things are inside an experiment's container, and the environment a backend needs.

The host mounts and sets these; the container reads them. Both halves import them from here.
"""

from __future__ import annotations

MODELS_DIR = "/llem/models"
"""Local model folders are mounted read-only under here: `<MODELS_DIR>/<hash8>-<name>`."""

PROMPTS_DIR = "/llem/prompts"
"""JSONL prompt files are mounted read-only under here: `<PROMPTS_DIR>/<hash8>-<name>`."""

HF_CACHE_DIR = "/llem/hf-cache"
"""The Hugging Face cache (HF_HOME inside the container)."""

ENGINE_CACHE_DIR = "/llem/engine-cache"
"""Compiled TensorRT-LLM engines, kept on the host across experiments."""

# Why each vLLM variable:
# - spawn: worker processes must not fork a parent that may have touched CUDA (NVML sampling
#   threads, torch); forked CUDA state breaks tensor-parallel workers.
# - V1 multiprocessing off: the engine core runs in the runner's process, so a step returns
#   exactly when its tokens exist (token timestamps are not delayed by an IPC hop) and SIGTERM
#   stops one process. Tensor-parallel workers are still separate processes.
# - no usage statistics: containers may be offline, and a study must not phone home.
VLLM_ENV: dict[str, str] = {
    "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}

BACKEND_ENV: dict[str, dict[str, str]] = {"pytorch": {}, "vllm": VLLM_ENV, "tensorrt": {}}
"""Environment every container of a backend runs with, set by the host."""
