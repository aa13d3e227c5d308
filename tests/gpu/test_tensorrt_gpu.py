"""TensorRT-LLM on a CUDA GPU (PyTorch flow, then a compiled engine built once and reused), in
this machine's Python. Skipped without tensorrt_llm or a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip(
    "tensorrt_llm", reason="needs tensorrt_llm (the llenergymeasure/tensorrt image)"
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llenergymeasure.experiment.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("trt") / "m", layers=4, hidden=512, heads=8)


def test_pytorch_flow(tmp_path: Path, model: Path) -> None:
    from helpers.engine_run import run_engine

    run_engine(tmp_path, model, "tensorrt", {"engine": "pytorch", "max_batch_size": 16})


def test_engine_is_built_once_then_loaded_from_the_cache(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.engine_run import run_engine

    monkeypatch.setenv("LLEM_ENGINE_CACHE", str(tmp_path / "engines"))
    section = {"engine": "tensorrt", "max_batch_size": 16}
    first = run_engine(tmp_path / "a", model, "tensorrt", section)
    (built,) = (tmp_path / "engines").iterdir()
    assert (built / "llem-build.json").is_file()
    second = run_engine(tmp_path / "b", model, "tensorrt", section)
    assert second.timings.load_s < first.timings.load_s  # no build the second time
