"""On a CUDA GPU: the experiment measures energy from the NVML counter, times tokens, writes the
timeline. The model is random-weight (it measures the harness, not any real model)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.workdirs import write_workdir

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

from llenergymeasure.contract.result import ExperimentResult  # noqa: E402


@pytest.fixture(scope="module")
def gpu_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llenergymeasure.experiment.tiny_model import make_tiny_model

    # A few seconds per pass of the prompt set on one GPU.
    return make_tiny_model(
        tmp_path_factory.mktemp("gpu-model") / "m", layers=8, hidden=1536, heads=16
    )


def test_counter_and_sampler_agree_under_load() -> None:
    from llenergymeasure.energy.gpus import MeteredGpus
    from llenergymeasure.energy.meter import EnergyMeter
    from llenergymeasure.energy.rapl import Rapl
    from llenergymeasure.energy.sampler import PowerSampler

    metered, reason = MeteredGpus.open(1)
    assert metered is not None, reason
    indices = metered.indices
    sampler = PowerSampler(metered.sample, indices)
    sampler.start()
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    meter = EnergyMeter(metered, None, sampler, Rapl(), indices)
    torch.cuda.synchronize()
    meter.begin("burn")
    end = time.perf_counter() + 4.0
    while time.perf_counter() < end:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize()
    counter = meter.end("burn")
    sampler.stop()
    integral = meter.power_integral(counter.start_s, counter.end_s)
    assert counter.gpu_source == "nvml_energy_counter"
    assert counter.gpu_j is not None and integral is not None
    power = counter.gpu_j / counter.duration_s
    print(f"burn: counter {counter.gpu_j:.1f} J, integral {sum(integral):.1f} J, {power:.0f} W")
    assert 50 < power < 1500
    assert sum(integral) == pytest.approx(counter.gpu_j, rel=0.25)


def test_experiment_on_cuda(gpu_model_dir: Path, tmp_path: Path) -> None:
    work = write_workdir(
        tmp_path / "work",
        gpu_model_dir,
        precision="bf16",
        gpu_count=1,
        n_prompts=32,
        max_new_tokens=96,
        prompts={"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 128}},
        baseline={"duration_s": 5.0},
        warmup={"min_batches": 3, "max_batches": 12, "cv_window": 3, "cv_bound": 0.05},
        min_window_s=10.0,
        pytorch={"batch_size": 8},
    )
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    proc = run(
        [sys.executable, "-m", "llenergymeasure.experiment", str(work)],
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + (work / "error.json").read_text()
    text = (work / "result.json").read_text()
    print(text)
    result = ExperimentResult.model_validate_json(text)
    e = result.energy
    assert result.environment.device == "cuda" and result.environment.gpus
    assert e.gpu_source == "nvml_energy_counter"
    assert e.gpu_j is not None and e.gpu_j > 0
    assert e.baseline_gpu_w is not None and e.baseline_gpu_w > 0
    assert e.mean_gpu_power_w is not None and e.baseline_gpu_w < e.mean_gpu_power_w < 1500
    assert e.j_per_output_token is not None and 0 < e.j_per_output_token < 10
    assert e.load_gpu_j is not None
    assert result.latency.ttft_ms is not None and result.latency.itl_ms is not None
    assert result.tokens.output_tokens == 96 * result.tokens.requests
    assert result.memory.peak_allocated_mb is not None
    assert result.telemetry.samples > 10
    assert result.timings.window_s >= 10.0
    import pyarrow.parquet as pq

    table = pq.read_table(work / "timeseries.parquet").to_pydict()
    assert "window" in set(table["phase"]) and max(table["power_w"]) > 0
    print(json.dumps({"timeseries_rows": len(table["t_s"])}))
