"""A mixed study end to end on CPU: PyTorch (llenergymeasure/cpu), vLLM (llenergymeasure/vllm-cpu).

The real `llem run`, real containers, the real vLLM engine (its CPU build), the tiny offline model
with head_dim 64 (vLLM's CPU attention needs at least that). scripts/test builds the vllm-cpu
image (unless LLEM_BUILD_VLLM_CPU=0) and sets LLEM_REQUIRE_VLLM_CPU=1, so a missing image fails
this test; run alone without the image, it skips, saying how to build it.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import CPU_IMAGE, llem, study_dirs, write_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

VLLM_CPU_IMAGE = "llenergymeasure/vllm-cpu:latest"
MAX_NEW_TOKENS = 8


@pytest.fixture
def vllm_cpu_image(client) -> str:
    if not client.images.list(name="llenergymeasure/cpu"):
        pytest.fail("llenergymeasure/cpu is missing: run `llem images build cpu`")
    if not client.images.list(name="llenergymeasure/vllm-cpu"):
        reason = "llenergymeasure/vllm-cpu is absent: run `llem images build vllm-cpu`"
        if os.environ.get("LLEM_REQUIRE_VLLM_CPU") == "1":
            pytest.fail(reason)
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return VLLM_CPU_IMAGE


def _tiny_model(folder) -> None:
    subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "-e", "HOME=/tmp"),
            *("-u", f"{os.getuid()}:{os.getgid()}", "-v", f"{folder}:/out"),
            *("--entrypoint", "python3", CPU_IMAGE),
            *("-m", "llenergymeasure.runner_entry.tiny_model", "/out/model"),
            *("--hidden", "128", "--heads", "2"),
        ],
        check=True,
        capture_output=True,
    )


def test_mixed_pytorch_and_vllm_study_on_cpu(tmp_path, vllm_cpu_image):
    _tiny_model(tmp_path)
    study = write_study(
        tmp_path,
        ["model"],
        images={"pytorch": CPU_IMAGE, "vllm": vllm_cpu_image},
        n_prompts=4,
        max_input_tokens=32,
        max_new_tokens=MAX_NEW_TOKENS,
        prompts={"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 16}},
        warmup={"min_batches": 1, "max_batches": 2},
        baseline={"duration_s": 1},
        min_window_s=0.5,
        pytorch={"batch_size": 4},
        vllm={"enforce_eager": True},  # the image has no C++ compiler for torch inductor
        sweep={"backend": ["pytorch", "vllm"]},
        execution={"experiment_timeout_s": 600, "stall_timeout_s": 300},
    )
    proc = llem("run", str(study), "--yes", cwd=tmp_path, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    assert record.status == "completed" and len(record.runs) == 2
    results: dict[str, ExperimentResult] = {}
    for run in record.runs.values():
        assert run.status == "completed", run
        result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        assert result.context.run_id == run.run_id and result.context.image_id == run.image_id
        results[result.config.backend] = result
    assert set(results) == {"pytorch", "vllm"}
    vllm = results["vllm"]
    assert vllm.environment.backend_engine == "vllm" and vllm.environment.device == "cpu"
    assert vllm.environment.backend_engine_version == "0.32.0"
    assert vllm.latency.ttft_ms is not None and vllm.latency.ttft_ms.n == vllm.tokens.requests
    assert vllm.latency.itl_ms is not None and vllm.latency.itl_ms.mean > 0
    # Fixed output length: both engines generate exactly max_new_tokens for every request.
    for result in results.values():
        assert result.tokens.output_tokens == result.tokens.requests * MAX_NEW_TOKENS
        assert result.throughput.output_tokens_per_s > 0
