"""ExperimentConfig -> vLLM arguments as plain data (no vllm import): unit-tested anywhere.

`engine_kwargs` feeds `vllm.LLM(...)`; `sampling_kwargs` feeds `vllm.SamplingParams(...)`.
Only options the study sets explicitly are passed beyond the measured method's fixed ones, so an
unset option keeps vLLM's own default and the recorded config says which ones those were.
"""

from __future__ import annotations

from typing import Any

from llenergymeasure.contract.config import ExperimentConfig, Precision, VLLMConfig

VLLM_IMAGE = "llenergymeasure/vllm"
VLLM_CPU_IMAGE = "llenergymeasure/vllm-cpu"

VLLM_DTYPES = {Precision.fp32: "float32", Precision.fp16: "float16", Precision.bf16: "bfloat16"}


def engine_kwargs(config: ExperimentConfig, model: str, *, offline: bool) -> dict[str, Any]:
    """Arguments of `vllm.LLM` for this experiment; `model` is the path or hub id to load."""
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
    }
    if config.revision and not offline:
        kwargs["revision"] = config.revision
        kwargs["tokenizer_revision"] = config.revision
    optional = {
        "max_num_batched_tokens": section.max_num_batched_tokens,
        "quantization": section.quantization,
        "enable_chunked_prefill": section.enable_chunked_prefill,
        "max_model_len": section.max_model_len,
        "block_size": section.block_size,
    }
    kwargs.update({key: value for key, value in optional.items() if value is not None})
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
