"""A mixed study end to end on CPU: PyTorch (llenergymeasure/cpu), vLLM (llenergymeasure/vllm-cpu)
with its engine core in its own process (vLLM's default) and in the experiment process itself.

The real `llem run`, real containers, the real vLLM engine (its CPU build), the tiny offline model
with head_dim 64 (vLLM's CPU attention needs at least that) and a 512-token context, under the
default max_input_tokens (2048): the engine is sized to the run's prompts, not to that bound.
scripts/test builds the vllm-cpu image (unless LLEM_BUILD_VLLM_CPU=0) and sets
LLEM_REQUIRE_VLLM_CPU=1, so a missing image fails these tests; run alone without the image, they
skip, saying how to build it.
"""

from __future__ import annotations

import pytest

from helpers.integration import CPU_IMAGE, llem, make_tiny_model, study_dirs, write_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MAX_NEW_TOKENS = 8
PROMPT_TOKENS = 16
CONTEXT = 512


def test_mixed_pytorch_and_vllm_study_on_cpu(tmp_path, vllm_cpu_image):
    make_tiny_model(tmp_path, "--hidden", "128", "--heads", "2", "--context", str(CONTEXT))
    study = write_study(
        tmp_path,
        ["model"],
        images={"pytorch": CPU_IMAGE, "vllm": vllm_cpu_image},
        n_prompts=4,
        max_new_tokens=MAX_NEW_TOKENS,
        prompts={
            "source": "synthetic",
            "input_length": {"distribution": "fixed", "tokens": PROMPT_TOKENS},
        },
        warmup={"min_batches": 1, "max_batches": 2},
        baseline={"duration_s": 1},
        min_window_s=0.5,
        pytorch={"batch_size": 4},
        vllm={"enforce_eager": True},  # the image has no C++ compiler for torch inductor
        sweep={
            "backend": ["pytorch", "vllm"],
            "vllm.engine_multiprocessing": [True, False],
        },
        execution={"experiment_timeout_s": 600, "stall_timeout_s": 300},
    )
    proc = llem("run", str(study), "--yes", cwd=tmp_path, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    assert record.status == "completed" and len(record.runs) == 3
    results: dict[tuple[str, bool | None], ExperimentResult] = {}
    for run in record.runs.values():
        assert run.status == "completed", run
        result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        assert result.context.run_id == run.run_id and result.context.image_id == run.image_id
        assert result.config.max_input_tokens == 2048 > CONTEXT
        mode = result.config.vllm.engine_multiprocessing if result.config.vllm else None
        results[(result.config.backend, mode)] = result
    assert set(results) == {("pytorch", None), ("vllm", True), ("vllm", False)}
    for multiprocessing in (True, False):
        vllm = results[("vllm", multiprocessing)]
        assert vllm.environment.backend_engine == "vllm" and vllm.environment.device == "cpu"
        assert vllm.environment.backend_engine_version == "0.32.0"
        arguments = vllm.environment.backend_engine_arguments
        assert arguments["VLLM_ENABLE_V1_MULTIPROCESSING"] == ("1" if multiprocessing else "0")
        assert arguments["max_model_len"] == PROMPT_TOKENS + MAX_NEW_TOKENS
        expected = "its own process" if multiprocessing else "the experiment process itself"
        assert expected in vllm.latency.method
        _assert_per_request_latency(vllm)
    # Fixed output length: both engines generate exactly max_new_tokens for every request.
    for result in results.values():
        assert result.tokens.output_tokens == result.tokens.requests * MAX_NEW_TOKENS
        assert result.throughput.output_tokens_per_s > 0


def _assert_per_request_latency(result: ExperimentResult) -> None:
    """One TTFT per request, tokens - 1 gaps per request, and TTFT within request latency."""
    latency, tokens = result.latency, result.tokens
    assert latency.ttft_ms is not None and latency.itl_ms is not None
    assert latency.ttft_ms.n == latency.request_ms.n == tokens.requests
    assert latency.itl_ms.n == tokens.output_tokens - tokens.requests
    assert 0 < latency.ttft_ms.min <= latency.request_ms.min
    assert latency.ttft_ms.max <= latency.request_ms.max
    assert latency.itl_ms.min >= 0 and latency.itl_ms.mean > 0
    # a request's latency covers its first token and its (tokens - 1) gaps
    gaps_ms = latency.itl_ms.mean * (MAX_NEW_TOKENS - 1)
    assert latency.request_ms.mean == pytest.approx(latency.ttft_ms.mean + gaps_ms, rel=1e-6)


def test_the_vllm_command_starts_in_the_image(client, vllm_cpu_image):
    """`vllm serve` and `vllm bench` (serving mode and the benchmark need them) start."""
    for command in (["--version"], ["serve", "--help"], ["bench", "throughput", "--help"]):
        output = client.containers.run(
            vllm_cpu_image, command, entrypoint="vllm", network_mode="none", remove=True
        )
        if command == ["--version"]:
            assert output.decode().strip().splitlines()[-1] == "0.32.0+cpu"
