"""ExperimentConfig -> TensorRT-LLM arguments as plain data (no tensorrt_llm import), and the key
of the engine cache, so both are unit-tested anywhere.

`llm_kwargs` holds the scalar arguments of `tensorrt_llm.LLM`; the objects it takes
(`BuildConfig`, `KvCacheConfig`, `QuantConfig`) are described by `build_config`,
`kv_cache_config` and `quant_config` as keyword dicts, built by the adapter.

Compiled TensorRT engines are kept under ENGINE_CACHE_DIR (a host folder the orchestrator mounts
read-write), one folder per `engine_cache_key`: everything that changes the compiled engine is in
the key, so an engine is built once and reused by every later run with the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from llenergymeasure.contract.config import ExperimentConfig, Precision
from llenergymeasure.contract.sections.tensorrt import TensorRTConfig

TRT_DTYPES = {Precision.fp32: "float32", Precision.fp16: "float16", Precision.bf16: "bfloat16"}
# contract name -> tensorrt_llm.llmapi.QuantAlgo member
QUANT_ALGOS = {
    "fp8": "FP8",
    "int8_sq": "W8A8_SQ_PER_CHANNEL",
    "int4_awq": "W4A16_AWQ",
    "w4a8_awq": "W4A8_AWQ",
    "int8_wo": "W8A16",
    "int4_wo": "W4A16",
    "nvfp4": "NVFP4",
}


def _section(config: ExperimentConfig) -> TensorRTConfig:
    section = config.tensorrt
    assert isinstance(section, TensorRTConfig)
    return section


def llm_kwargs(config: ExperimentConfig, model: str, *, offline: bool) -> dict[str, Any]:
    """Scalar arguments of `LLM(...)` common to both flows."""
    section = _section(config)
    kwargs: dict[str, Any] = {
        "model": model,
        "tokenizer": model,
        "dtype": TRT_DTYPES[config.precision],
        "tensor_parallel_size": section.tp_size,
        "pipeline_parallel_size": section.pp_size,
    }
    if config.revision and not offline:
        kwargs["revision"] = config.revision
    if section.engine == "pytorch":
        # The PyTorch flow takes the runtime limits directly; the TensorRT flow bakes them
        # into the engine through BuildConfig.
        kwargs["max_batch_size"] = section.max_batch_size
        kwargs.update(_limits(config, section))
    return kwargs


def _limits(config: ExperimentConfig, section: TensorRTConfig) -> dict[str, int]:
    limits = {"max_seq_len": section.max_seq_len or config.max_input_tokens + config.max_new_tokens}
    if section.max_num_tokens is not None:
        limits["max_num_tokens"] = section.max_num_tokens
    return limits


def build_config(config: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments of `BuildConfig` (TensorRT flow only)."""
    section = _section(config)
    return {"max_batch_size": section.max_batch_size, **_limits(config, section)}


def kv_cache_config(config: ExperimentConfig) -> dict[str, Any]:
    section = _section(config)
    kwargs: dict[str, Any] = {
        "free_gpu_memory_fraction": section.kv_cache_free_gpu_memory_fraction,
        # Off, like vLLM's default here: repeated prompt sets must not be served from cache.
        "enable_block_reuse": False,
    }
    if section.engine == "pytorch" and section.kv_cache_dtype != "auto":
        kwargs["dtype"] = section.kv_cache_dtype
    return kwargs


def quant_config(config: ExperimentConfig) -> dict[str, str] | None:
    """QuantAlgo member names for `QuantConfig(quant_algo=..., kv_cache_quant_algo=...)`."""
    section = _section(config)
    if section.engine != "tensorrt":
        return None
    names: dict[str, str] = {}
    if section.quantization is not None:
        names["quant_algo"] = QUANT_ALGOS[section.quantization]
    if section.kv_cache_dtype == "fp8":
        names["kv_cache_quant_algo"] = "FP8"
    return names or None


def serve_arguments(
    config: ExperimentConfig, *, offline: bool, longest_prompt_tokens: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`trtllm-serve`'s flags, and the LLM API options it takes from a YAML file
    (`--extra_llm_api_options`): together the engine offline mode builds, on a server. The
    maximum sequence is the run's longest prompt plus its output unless the section sets it."""
    section = _section(config)
    flags: dict[str, Any] = {
        "backend": "pytorch" if section.engine == "pytorch" else "trt",
        "tp_size": section.tp_size,
        "pp_size": section.pp_size,
        "max_batch_size": section.max_batch_size,
        "max_seq_len": section.max_seq_len or longest_prompt_tokens + config.max_new_tokens,
    }
    if section.max_num_tokens is not None:
        flags["max_num_tokens"] = section.max_num_tokens
    options: dict[str, Any] = {
        "dtype": TRT_DTYPES[config.precision],
        "kv_cache_config": kv_cache_config(config),
    }
    if config.revision and not offline:
        options["revision"] = config.revision
    quant = quant_config(config)
    if quant is not None:
        options["quant_config"] = quant
    return flags, options


def sampling_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """Arguments of `tensorrt_llm.SamplingParams`: fixed output length as for every backend."""
    decoding = config.decoding
    kwargs: dict[str, Any] = {
        "max_tokens": config.max_new_tokens,
        "repetition_penalty": decoding.repetition_penalty,
        "seed": decoding.seed,
        "detokenize": False,
    }
    if config.fixed_output_length:
        kwargs.update(ignore_eos=True, min_tokens=config.max_new_tokens)
    if decoding.greedy:
        kwargs["top_k"] = 1  # greedy: TensorRT-LLM rejects temperature 0 in some releases
    else:
        kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p)
        if decoding.top_k:
            kwargs["top_k"] = decoding.top_k
    return kwargs


def engine_cache_key(config: ExperimentConfig, engine_version: str) -> str:
    """Folder name of the compiled engine: readable model part + hash of every build input."""
    section = _section(config)
    inputs = {
        "model": config.model,
        "revision": config.revision,
        "precision": config.precision.value,
        "tp_size": section.tp_size,
        "pp_size": section.pp_size,
        **build_config(config),
        "max_num_tokens": section.max_num_tokens,
        "quantization": section.quantization,
        "kv_cache_dtype": section.kv_cache_dtype,
        "engine_version": engine_version,
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", config.model.rstrip("/").split("/")[-1])
    return f"{readable.strip('-') or 'model'}-{digest}"
