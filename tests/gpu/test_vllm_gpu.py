"""vLLM on a CUDA GPU, in this machine's Python (the llenergymeasure/vllm image's own test is the
same run inside the image). Skipped without vllm or a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vllm", reason="needs vllm (the llenergymeasure/vllm image)")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_vllm_runs_a_small_model_with_energy_and_token_times(tmp_path: Path) -> None:
    from helpers.engine_run import run_engine
    from llenergymeasure.experiment.tiny_model import make_tiny_model

    model = make_tiny_model(tmp_path / "m", layers=4, hidden=512, heads=8)
    result = run_engine(
        tmp_path, model, "vllm", {"max_model_len": 128, "gpu_memory_utilization": 0.5}
    )
    assert result.memory.peak_allocated_mb is not None  # engine core in process, one GPU
