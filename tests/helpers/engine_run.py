"""Shared by the vLLM and TensorRT-LLM GPU tests: run `llem-experiment` on a work folder in this
machine's Python and check the result a real GPU run must have."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers.workdirs import write_workdir
from llenergymeasure.contract.result import ExperimentResult


def run_engine(
    tmp_path: Path, model: Path, backend: str, section: dict[str, Any]
) -> ExperimentResult:
    work = write_workdir(
        tmp_path / backend,
        model,
        backend=backend,
        precision="fp16",
        gpu_count=1,
        n_prompts=16,
        max_input_tokens=64,
        max_new_tokens=32,
        prompts={"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 32}},
        baseline={"duration_s": 2},
        min_window_s=3,
        pytorch=None,
        **{backend: section},
    )
    proc = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.experiment", str(work)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, (
        (work / "error.json").read_text() if (work / "error.json").exists() else proc.stderr[-3000:]
    )
    result = ExperimentResult.model_validate_json((work / "result.json").read_text())
    assert (
        result.environment.backend_engine == {"vllm": "vllm", "tensorrt": "tensorrt_llm"}[backend]
    )
    assert result.environment.device == "cuda"
    assert result.energy.gpu_source == "nvml_energy_counter", result.energy.gpu_j_reason
    assert result.energy.gpu_j is not None and result.energy.gpu_j > 0
    assert result.latency.ttft_ms is not None and result.latency.itl_ms is not None
    assert result.tokens.output_tokens == result.tokens.requests * 32  # fixed output length
    per_token = result.energy.j_per_output_token
    # A random-weight small model on one GPU: far below 10 J and above 1 uJ per token.
    assert per_token is not None and 1e-6 < per_token < 10, per_token
    return result
