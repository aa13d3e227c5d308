"""TensorRT-LLM: config -> LLM/build/quantisation arguments and the engine cache key."""

from __future__ import annotations

import importlib.util

import pytest

from llenergymeasure.backends.registry import BackendUnavailable, get_backend
from llenergymeasure.backends.tensorrt_args import (
    QUANT_ALGOS,
    build_config,
    engine_cache_key,
    kv_cache_config,
    llm_kwargs,
    quant_config,
    sampling_kwargs,
)
from llenergymeasure.contract.config import CombinationError, ExperimentConfig
from llenergymeasure.contract.sections.tensorrt import TensorRTQuantization


def _config(**fields) -> ExperimentConfig:
    fields.setdefault("gpu_count", 1)
    fields.setdefault("model", "org/Llama-3.1-8B")
    return ExperimentConfig(backend="tensorrt", **fields)


def test_pytorch_flow_takes_runtime_limits_directly() -> None:
    config = _config(
        precision="fp16",
        max_input_tokens=1000,
        max_new_tokens=24,
        gpu_count=2,
        tensorrt={"tp_size": 2, "max_batch_size": 16, "max_num_tokens": 4096},
    )
    kwargs = llm_kwargs(config, "m", offline=True)
    assert kwargs["dtype"] == "float16"
    assert kwargs["tensor_parallel_size"] == 2 and kwargs["pipeline_parallel_size"] == 1
    assert kwargs["max_batch_size"] == 16
    assert kwargs["max_num_tokens"] == 4096
    assert kwargs["max_seq_len"] == 1024  # input + output when not set
    assert quant_config(config) is None


def test_tensorrt_flow_bakes_limits_into_the_build() -> None:
    config = _config(
        tensorrt={"engine": "tensorrt", "max_batch_size": 64, "max_seq_len": 3000},
    )
    kwargs = llm_kwargs(config, "m", offline=True)
    assert "max_batch_size" not in kwargs and "max_seq_len" not in kwargs
    assert build_config(config) == {"max_batch_size": 64, "max_seq_len": 3000}


@pytest.mark.parametrize("name", list(TensorRTQuantization.__args__))
def test_every_quantisation_maps_to_a_quant_algo(name: str) -> None:
    config = _config(tensorrt={"engine": "tensorrt", "quantization": name})
    assert quant_config(config) == {"quant_algo": QUANT_ALGOS[name]}


def test_fp8_kv_cache() -> None:
    trt = _config(tensorrt={"engine": "tensorrt", "kv_cache_dtype": "fp8"})
    assert quant_config(trt) == {"kv_cache_quant_algo": "FP8"}
    torch_flow = _config(
        tensorrt={"kv_cache_dtype": "fp8", "kv_cache_free_gpu_memory_fraction": 0.5}
    )
    assert kv_cache_config(torch_flow) == {
        "free_gpu_memory_fraction": 0.5,
        "enable_block_reuse": False,
        "dtype": "fp8",
    }


def test_quantising_needs_the_tensorrt_flow_and_is_a_combination_rule() -> None:
    with pytest.raises(ValueError, match="engine: tensorrt") as caught:
        _config(tensorrt={"quantization": "fp8"})
    cause = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, CombinationError)
    assert cause.fields == ("tensorrt.engine", "tensorrt.quantization")
    _config(tensorrt={"engine": "tensorrt", "quantization": "fp8"})


def test_sampling_is_fixed_length_and_greedy_by_top_k() -> None:
    kwargs = sampling_kwargs(_config(max_new_tokens=16))
    assert kwargs["max_tokens"] == kwargs["min_tokens"] == 16
    assert kwargs["ignore_eos"] is True and kwargs["top_k"] == 1
    assert "temperature" not in kwargs
    sampled = sampling_kwargs(_config(decoding={"temperature": 0.5, "top_p": 0.8}))
    assert (sampled["temperature"], sampled["top_p"]) == (0.5, 0.8)
    assert "top_k" not in sampled


def test_engine_cache_key_changes_with_every_build_input() -> None:
    base = _config(tensorrt={"engine": "tensorrt"})
    key = engine_cache_key(base, "1.2.1")
    assert key.startswith("Llama-3.1-8B-") and key == engine_cache_key(base, "1.2.1")
    variants = [
        engine_cache_key(base, "1.3.0"),
        engine_cache_key(_config(model="org/other", tensorrt={"engine": "tensorrt"}), "1.2.1"),
        engine_cache_key(_config(precision="fp16", tensorrt={"engine": "tensorrt"}), "1.2.1"),
        engine_cache_key(
            _config(gpu_count=2, tensorrt={"engine": "tensorrt", "tp_size": 2}), "1.2.1"
        ),
        engine_cache_key(_config(tensorrt={"engine": "tensorrt", "max_batch_size": 9}), "1.2.1"),
        engine_cache_key(_config(tensorrt={"engine": "tensorrt", "max_num_tokens": 99}), "1.2.1"),
        engine_cache_key(_config(tensorrt={"engine": "tensorrt", "quantization": "fp8"}), "1.2.1"),
        engine_cache_key(_config(max_new_tokens=64, tensorrt={"engine": "tensorrt"}), "1.2.1"),
    ]
    assert len({key, *variants}) == len(variants) + 1
    # Options that do not change the compiled engine do not change the key.
    same = _config(
        n_prompts=7, tensorrt={"engine": "tensorrt", "kv_cache_free_gpu_memory_fraction": 0.5}
    )
    assert engine_cache_key(same, "1.2.1") == key


def test_tensorrt_needs_a_gpu() -> None:
    with pytest.raises(ValueError, match="needs gpu_count >= 1"):
        _config(gpu_count=0)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt_llm") is not None, reason="tensorrt_llm is installed"
)
def test_missing_tensorrt_llm_names_the_image() -> None:
    with pytest.raises(BackendUnavailable, match="llenergymeasure/tensorrt"):
        get_backend("tensorrt").load(_config(), offline=True, longest_prompt_tokens=8)
