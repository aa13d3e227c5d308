"""ExperimentConfig -> vLLM arguments as plain data (no vllm import): unit-tested anywhere.

`engine_kwargs` feeds `vllm.LLM(...)`; `sampling_kwargs` feeds `vllm.SamplingParams(...)`.
Only options the study sets explicitly are passed beyond the measured method's fixed ones, so an
unset option keeps vLLM's own default and the recorded config says which ones those were.

On CPU (`gpu_count: 0`, vLLM's CPU build) vLLM reads `gpu_memory_utilization` as a fraction of
the host's *total* memory to reserve up front, which fails on any host whose memory is partly in
use (0.9, the default, nearly always). There the KV cache is sized instead (`kv_cache_memory_bytes`,
which makes vLLM ignore `gpu_memory_utilization`) to what the experiment can hold at once: every
sequence it can run concurrently at its full length. `gpu_memory_utilization` then caps that at
this fraction of the memory available when the engine starts.

`max_model_len`, unless the study sets it, is what the run needs: its longest tokenised prompt
plus `max_new_tokens` (on every device). vLLM would otherwise take the model's whole context,
reserving KV cache for sequences the run never makes, or, set from `max_input_tokens`, refuse a
model whose context is shorter than the truncation bound even when every prompt is short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llenergymeasure.contract.config import ExperimentConfig, Precision
from llenergymeasure.contract.sections.vllm import VLLMConfig

VLLM_DTYPES = {Precision.fp32: "float32", Precision.fp16: "float16", Precision.bf16: "bfloat16"}
ELEMENT_BYTES = {Precision.fp32: 4, Precision.fp16: 2, Precision.bf16: 2}
# The largest KV block vLLM's CPU attention backends use, in tokens: a sequence's cache is sized
# in whole blocks, so each is rounded up to this.
CPU_BLOCK_TOKENS = 256


@dataclass(frozen=True)
class KVShape:
    """What one token's KV cache occupies: per layer, a key and a value of kv_heads x head_dim."""

    layers: int
    kv_heads: int
    head_dim: int


def kv_bytes_per_token(config: ExperimentConfig, shape: KVShape) -> int:
    section = config.vllm
    assert isinstance(section, VLLMConfig)
    element = 1 if section.kv_cache_dtype.startswith("fp8") else ELEMENT_BYTES[config.precision]
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * element


def max_model_len(config: ExperimentConfig, longest_prompt_tokens: int) -> int:
    """The longest sequence: the section's value, else the longest this run makes."""
    section = config.vllm
    assert isinstance(section, VLLMConfig)
    return section.max_model_len or longest_prompt_tokens + config.max_new_tokens


def cpu_kv_cache_bytes(
    config: ExperimentConfig, shape: KVShape, available_bytes: int, model_len: int
) -> int:
    """KV cache for vLLM on CPU: all concurrent sequences at full length, capped (module doc).

    The protocol submits the whole prompt set as one batch, so at most
    min(max_num_seqs, n_prompts) sequences run at once. Under the cap vLLM preempts, as on a GPU.
    """
    section = config.vllm
    assert isinstance(section, VLLMConfig)
    sequences = min(section.max_num_seqs, config.n_prompts)
    block = section.block_size or CPU_BLOCK_TOKENS
    # + 1: vLLM's block pool keeps one block aside (its null block).
    tokens = (sequences * math.ceil(model_len / block) + 1) * block
    wanted = tokens * kv_bytes_per_token(config, shape)
    return min(wanted, int(available_bytes * section.gpu_memory_utilization))


def engine_kwargs(
    config: ExperimentConfig,
    model: str,
    *,
    offline: bool,
    model_len: int,
    cpu_kv_bytes: int | None = None,
) -> dict[str, Any]:
    """Arguments of `vllm.LLM` for this experiment; `model` is the path or hub id to load,
    `model_len` the `max_model_len` (from `max_model_len`).

    `cpu_kv_bytes` (from `cpu_kv_cache_bytes`) is required when gpu_count is 0.
    """
    section = config.vllm
    assert isinstance(section, VLLMConfig)
    kwargs: dict[str, Any] = {
        "model": model,
        "tokenizer": model,
        "dtype": VLLM_DTYPES[config.precision],
        "seed": config.decoding.seed,
        "tensor_parallel_size": section.tensor_parallel_size,
        "pipeline_parallel_size": section.pipeline_parallel_size,
        "max_num_seqs": section.max_num_seqs,
        "gpu_memory_utilization": section.gpu_memory_utilization,
        "enforce_eager": section.enforce_eager,
        "kv_cache_dtype": section.kv_cache_dtype,
        "enable_prefix_caching": section.enable_prefix_caching,
        "max_model_len": model_len,
    }
    if config.revision and not offline:
        kwargs["revision"] = config.revision
        kwargs["tokenizer_revision"] = config.revision
    optional = {
        "max_num_batched_tokens": section.max_num_batched_tokens,
        "quantization": section.quantization,
        "enable_chunked_prefill": section.enable_chunked_prefill,
        "block_size": section.block_size,
    }
    kwargs.update({key: value for key, value in optional.items() if value is not None})
    if config.gpu_count == 0:
        if cpu_kv_bytes is None:
            raise ValueError("vLLM on CPU (gpu_count 0) needs the KV cache size, cpu_kv_bytes")
        del kwargs["gpu_memory_utilization"]  # ignored by vLLM once the size is explicit
        kwargs["kv_cache_memory_bytes"] = cpu_kv_bytes
    return kwargs


def sampling_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """Arguments of `vllm.SamplingParams`: fixed output length unless the study turned it off."""
    decoding = config.decoding
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": config.max_new_tokens,
        "repetition_penalty": decoding.repetition_penalty,
        # Token ids are all the protocol needs; detokenising would add host work to the window.
        "detokenize": False,
    }
    if config.fixed_output_length:
        kwargs.update(ignore_eos=True, min_tokens=config.max_new_tokens)
    if decoding.greedy:
        kwargs["temperature"] = 0.0
    else:
        kwargs.update(
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            # vLLM reads 0 (and -1) as "no top-k"; the contract's 0 means the same.
            top_k=decoding.top_k,
        )
    return kwargs
