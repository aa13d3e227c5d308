"""vLLM: config -> engine/sampling arguments, and per-token times from engine steps (no vllm)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from llenergymeasure.backends import vllm as vllm_backend
from llenergymeasure.backends.registry import BackendUnavailable, get_backend
from llenergymeasure.backends.vllm import (
    available_memory_bytes,
    collect_step_times,
    kv_shape,
    require_cpu_compiler,
)
from llenergymeasure.backends.vllm_args import (
    KVShape,
    cpu_kv_cache_bytes,
    engine_kwargs,
    max_model_len,
    sampling_kwargs,
)
from llenergymeasure.contract.backends import VLLM_ENV
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.container import VLLM_MULTIPROCESSING_VAR, backend_environment


def _config(**fields) -> ExperimentConfig:
    return ExperimentConfig(model="org/model", backend="vllm", **fields)


def test_engine_arguments_follow_the_experiment_and_section() -> None:
    config = _config(
        precision="fp16",
        gpu_count=2,
        revision="abc123",
        decoding={"seed": 11},
        vllm={
            "tensor_parallel_size": 2,
            "max_num_seqs": 64,
            "gpu_memory_utilization": 0.8,
            "quantization": "fp8",
            "max_model_len": 4096,
            "enable_chunked_prefill": False,
        },
    )
    kwargs = engine_kwargs(config, "/llem/models/x", offline=False, model_len=4096)
    assert kwargs["model"] == kwargs["tokenizer"] == "/llem/models/x"
    assert kwargs["dtype"] == "float16"
    assert kwargs["seed"] == 11
    assert kwargs["tensor_parallel_size"] == 2
    assert kwargs["pipeline_parallel_size"] == 1
    assert kwargs["max_num_seqs"] == 64
    assert kwargs["gpu_memory_utilization"] == 0.8
    assert kwargs["quantization"] == "fp8"
    assert kwargs["max_model_len"] == 4096
    assert kwargs["enable_chunked_prefill"] is False
    assert kwargs["revision"] == kwargs["tokenizer_revision"] == "abc123"


def test_unset_options_keep_vllm_defaults_and_offline_drops_revision() -> None:
    kwargs = engine_kwargs(_config(gpu_count=1, revision="abc"), "m", offline=True, model_len=64)
    for key in ("max_num_batched_tokens", "quantization", "enable_chunked_prefill"):
        assert key not in kwargs
    assert "block_size" not in kwargs
    assert "revision" not in kwargs
    assert kwargs["dtype"] == "bfloat16"


def test_cpu_vllm_is_one_process() -> None:
    kwargs = engine_kwargs(
        _config(gpu_count=0), "m", offline=True, model_len=64, cpu_kv_bytes=2**20
    )
    assert kwargs["tensor_parallel_size"] == 1
    with pytest.raises(ValueError, match="1 on CPU"):
        _config(gpu_count=0, vllm={"tensor_parallel_size": 2})
    with pytest.raises(ValueError, match="must equal gpu_count"):
        _config(gpu_count=2, vllm={"tensor_parallel_size": 1})


SHAPE = KVShape(layers=2, kv_heads=2, head_dim=64)  # 2 x 2 x 2 x 64 x 4 = 2048 B/token in fp32


def test_cpu_kv_cache_holds_every_concurrent_sequence_at_full_length() -> None:
    config = _config(
        gpu_count=0,
        precision="fp32",
        n_prompts=4,
        max_input_tokens=32,
        max_new_tokens=8,
        prompts={"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 16}},
        vllm={"max_num_seqs": 256},
    )
    # 4 sequences (n_prompts < max_num_seqs) of 16 + 8 tokens, each rounded up to one
    # 256-token block, plus the block vLLM keeps aside
    model_len = max_model_len(config, longest_prompt_tokens=16)
    assert model_len == 24
    assert cpu_kv_cache_bytes(config, SHAPE, 2**40, model_len) == (4 + 1) * 256 * 2048
    two = config.model_copy(update={"vllm": config.vllm.model_copy(update={"max_num_seqs": 2})})
    assert cpu_kv_cache_bytes(two, SHAPE, 2**40, model_len) == (2 + 1) * 256 * 2048
    assert cpu_kv_cache_bytes(config, SHAPE, 2**40, 300) == (4 * 2 + 1) * 256 * 2048


def test_cpu_kv_cache_is_capped_by_available_memory() -> None:
    config = _config(gpu_count=0, precision="bf16", vllm={"gpu_memory_utilization": 0.5})
    assert cpu_kv_cache_bytes(config, SHAPE, 10_000, model_len=256) == 5_000


def test_cpu_engine_arguments_size_the_kv_cache_not_the_memory_fraction() -> None:
    config = _config(gpu_count=0, max_input_tokens=200, max_new_tokens=20)
    kwargs = engine_kwargs(config, "m", offline=True, model_len=52, cpu_kv_bytes=12345)
    assert kwargs["kv_cache_memory_bytes"] == 12345
    assert kwargs["max_model_len"] == 52
    assert "gpu_memory_utilization" not in kwargs
    with pytest.raises(ValueError, match="cpu_kv_bytes"):
        engine_kwargs(config, "m", offline=True, model_len=52)
    gpu = engine_kwargs(_config(gpu_count=1), "m", offline=True, model_len=52)
    assert "kv_cache_memory_bytes" not in gpu and gpu["gpu_memory_utilization"] == 0.9


def test_max_model_len_is_what_the_run_needs_not_the_truncation_bound() -> None:
    # 32-token prompts under the default max_input_tokens (2048): 32 + 16, on every device
    for gpus in (0, 1):
        config = _config(gpu_count=gpus, max_new_tokens=16)
        assert config.max_input_tokens == 2048
        assert max_model_len(config, longest_prompt_tokens=32) == 48
        kwargs = engine_kwargs(config, "m", offline=True, model_len=48, cpu_kv_bytes=1)
        assert kwargs["max_model_len"] == 48
    # a value the study sets wins
    fixed = _config(gpu_count=1, vllm={"max_model_len": 512})
    assert max_model_len(fixed, longest_prompt_tokens=32) == 512


def test_kv_shape_is_read_from_the_model_config(tiny_model_dir) -> None:
    config = ExperimentConfig(model=str(tiny_model_dir), backend="vllm", gpu_count=0)
    # the tiny model: 2 layers, hidden 64 over 4 heads (no grouped-query attention)
    assert kv_shape(config, offline=True) == KVShape(layers=2, kv_heads=4, head_dim=16)


def test_available_memory_is_positive_and_within_the_host() -> None:
    with open("/proc/meminfo") as handle:
        total = int(handle.readline().split()[1]) * 1024  # MemTotal is the first line
    assert 0 < available_memory_bytes() <= total


def test_cpu_without_a_compiler_needs_enforce_eager(monkeypatch) -> None:
    monkeypatch.setattr(vllm_backend.shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailable, match="enforce_eager: true"):
        require_cpu_compiler(_config(gpu_count=0))
    require_cpu_compiler(_config(gpu_count=0, vllm={"enforce_eager": True}))
    monkeypatch.setattr(vllm_backend.shutil, "which", lambda name: f"/usr/bin/{name}")
    require_cpu_compiler(_config(gpu_count=0))


def test_fixed_output_length_and_greedy() -> None:
    kwargs = sampling_kwargs(_config(gpu_count=1, max_new_tokens=32))
    assert kwargs["max_tokens"] == kwargs["min_tokens"] == 32
    assert kwargs["ignore_eos"] is True
    assert kwargs["temperature"] == 0.0
    assert "top_p" not in kwargs and "top_k" not in kwargs
    assert kwargs["detokenize"] is False


def test_sampling_and_free_length() -> None:
    config = _config(
        gpu_count=1,
        fixed_output_length=False,
        decoding={"temperature": 0.7, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.1},
    )
    kwargs = sampling_kwargs(config)
    assert "ignore_eos" not in kwargs and "min_tokens" not in kwargs
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["top_k"]) == (0.7, 0.9, 40)
    assert kwargs["repetition_penalty"] == 1.1


def test_engine_multiprocessing_is_vllms_default_and_the_experiments_choice() -> None:
    assert VLLM_ENV["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    assert VLLM_MULTIPROCESSING_VAR not in VLLM_ENV  # never forced for every run
    default = _config(gpu_count=1)
    assert default.vllm.engine_multiprocessing is True
    assert backend_environment(default)[VLLM_MULTIPROCESSING_VAR] == "1"
    off = _config(gpu_count=1, vllm={"engine_multiprocessing": False})
    assert backend_environment(off)[VLLM_MULTIPROCESSING_VAR] == "0"
    assert backend_environment(off)["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    pytorch = ExperimentConfig(model="m", gpu_count=1)
    assert VLLM_MULTIPROCESSING_VAR not in backend_environment(pytorch)


def test_engine_multiprocessing_is_validated_and_changes_the_hash() -> None:
    from llenergymeasure.study.hashing import config_hash

    with pytest.raises(ValueError, match="engine_multiprocessing"):
        _config(gpu_count=1, vllm={"engine_multiprocessing": "sometimes"})
    on, off = (_config(gpu_count=1, vllm={"engine_multiprocessing": v}) for v in (True, False))
    assert config_hash(on) != config_hash(off)
    assert config_hash(on) == config_hash(_config(gpu_count=1))


def _out(rid: str, n: int, finished: bool) -> SimpleNamespace:
    return SimpleNamespace(
        request_id=rid, finished=finished, outputs=[SimpleNamespace(token_ids=list(range(n)))]
    )


def test_step_times_per_request_under_continuous_batching() -> None:
    # Step k returns at t = k (fake clock). "a" gets 1 token per step and ends at step 3;
    # "b" waits a step, then gets 2 tokens at once (speculative), ends at step 4; "x" is foreign.
    steps = iter(
        [
            [_out("a", 1, False), _out("x", 1, False)],
            [_out("a", 2, False), _out("b", 1, False)],
            [_out("a", 3, True), _out("b", 3, False)],
            [_out("b", 4, True)],
        ]
    )
    ticks = iter([1.0, 2.0, 3.0, 4.0])
    times, finished, counts = collect_step_times(
        lambda: next(steps), {"a", "b"}, 0.0, clock=lambda: next(ticks)
    )
    assert times == {"a": [1.0, 2.0, 3.0], "b": [2.0, 3.0, 3.0, 4.0]}
    assert finished == {"a": 3.0, "b": 4.0}
    assert counts == {"a": 3, "b": 4}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_names_both_images() -> None:
    with pytest.raises(
        BackendUnavailable, match=r"llenergymeasure/vllm .*llenergymeasure/vllm-cpu"
    ):
        get_backend("vllm").load(_config(gpu_count=1), offline=True, longest_prompt_tokens=8)


def test_vllm_cpu_image_inputs_change_with_what_it_is_built_from() -> None:
    from llenergymeasure.imagebuild.backend_images import vllm_cpu_inputs
    from llenergymeasure.imagebuild.cpu_image import source_root

    root = source_root()
    same = vllm_cpu_inputs(root, "sha256:base")
    assert same == vllm_cpu_inputs(root, "sha256:base")
    assert same != vllm_cpu_inputs(root, "sha256:other-base")
