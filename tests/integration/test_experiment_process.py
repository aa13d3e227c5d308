"""The real `llem-experiment` as a subprocess on the tiny model (CPU; no Docker needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import ErrorReport
from llenergymeasure.study.work_files import read_progress

pytest.importorskip("torch")

EXPERIMENT = [sys.executable, "-m", "llenergymeasure.experiment"]
# Fails the model's forward on its 6th call: after load and warmup have started generating.
FAULT = """
import sys
from transformers import LlamaForCausalLM
calls = {"n": 0}
forward = LlamaForCausalLM.forward
def failing(self, *a, **k):
    calls["n"] += 1
    if calls["n"] == 6:
        raise RuntimeError("injected fault in forward")
    return forward(self, *a, **k)
LlamaForCausalLM.forward = failing
from llenergymeasure.experiment.main import main
sys.exit(main(sys.argv[1:]))
"""


def run(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def error_of(workdir: Path) -> ErrorReport:
    return ErrorReport.model_validate_json((workdir / "error.json").read_text())


def test_result_is_complete_and_exact(make_workdir: Callable[..., Path]) -> None:
    work = make_workdir(n_prompts=5, max_new_tokens=7)
    proc = run([*EXPERIMENT, str(work)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (work / "error.json").exists()
    result = ExperimentResult.model_validate_json((work / "result.json").read_text())
    tokens = result.tokens
    # 5 prompts of exactly 12 tokens, 7 new tokens each (fixed length), per pass.
    assert tokens.requests == 5 * tokens.passes
    assert tokens.input_tokens == 12 * tokens.requests
    assert tokens.output_tokens == 7 * tokens.requests
    assert tokens.batches == 2 * tokens.passes  # batch_size 4: 4 + 1
    assert result.timings.window_s >= 0.2
    lat = result.latency
    assert lat.ttft_ms is not None and lat.itl_ms is not None
    assert lat.itl_ms.n == 6 * tokens.requests
    for p in (lat.request_ms, lat.ttft_ms, lat.itl_ms):
        assert 0 < p.min <= p.p50 <= p.p90 <= p.p99 <= p.max
    assert lat.ttft_ms.max <= lat.request_ms.max
    thr = result.throughput
    assert thr.output_tokens_per_s == pytest.approx(tokens.output_tokens / result.timings.window_s)
    e = result.energy
    assert e.gpu_source == "unavailable" and e.gpu_j is None and e.gpu_j_reason
    assert e.j_per_output_token is None and e.j_per_output_token_reason
    assert "energy_unavailable" in {w.code for w in result.warnings}
    assert result.environment.device == "cpu"
    assert result.flops.total and result.flops.total > 0
    events = [ev.event for ev in read_progress(work / "progress.jsonl")]
    assert events[:4] == ["started", "model_loaded", "baseline_done", "warmup_done"]
    assert events[-1] == "finished" and events.count("batch") == tokens.batches


def test_a_thermal_warmup_without_a_gpu_says_it_judged_nothing(
    make_workdir: Callable[..., Path],
) -> None:
    warmup = {"min_batches": 2, "max_batches": 4, "cv_window": 2, "cv_bound": 0.5}
    work = make_workdir(warmup={**warmup, "thermal_max_s": 5.0, "thermal_window_s": 1.0})
    proc = run([*EXPERIMENT, str(work)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    timings = ExperimentResult.model_validate_json((work / "result.json").read_text()).timings
    assert timings.warmup_thermal_s == 0.0 and timings.warmup_thermal_settled is None
    assert timings.warmup_thermal_settled_reason == timings.warmup_thermal_rise_c_reason
    assert "gpu_count is 0" in (timings.warmup_thermal_settled_reason or "")
    warnings = ExperimentResult.model_validate_json((work / "result.json").read_text()).warnings
    (note,) = [w.message for w in warnings if w.code == "temperature_not_settled"]
    assert note.startswith("temperature not judged: ")


def test_eos_stopping_counts_only_real_tokens(make_workdir: Callable[..., Path]) -> None:
    work = make_workdir(fixed_output_length=False, max_new_tokens=40, min_window_s=0.0)
    proc = run([*EXPERIMENT, str(work)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = ExperimentResult.model_validate_json((work / "result.json").read_text())
    assert 0 < result.tokens.output_tokens <= 40 * result.tokens.requests
    assert result.latency.ttft_ms is not None
    assert result.latency.ttft_ms.n == result.tokens.requests


def test_bad_model_path(make_workdir: Callable[..., Path], tmp_path: Path) -> None:
    work = make_workdir(model=str(tmp_path / "no-such-model"))
    proc = run([*EXPERIMENT, str(work)])
    assert proc.returncode == 1
    error = error_of(work)
    assert "no-such-model" in error.message or "no-such-model" in error.traceback
    assert not (work / "result.json").exists()


def test_invalid_config_is_a_handled_failure(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"config": {"model": ""}}')
    proc = run([*EXPERIMENT, str(tmp_path)])
    assert proc.returncode == 1
    error = error_of(tmp_path)
    assert error.type == "InvalidConfig" and "context" in error.message


def test_exception_mid_generation(make_workdir: Callable[..., Path]) -> None:
    work = make_workdir()
    proc = run([sys.executable, "-c", FAULT, str(work)])
    assert proc.returncode == 1
    error = error_of(work)
    assert error.type == "RuntimeError"
    assert "injected fault in forward" in error.message
    assert "generate" in error.traceback and len(error.traceback.encode()) <= 8 * 1024
    assert not (work / "result.json").exists()


def test_sigterm_writes_interrupted_and_exits_fast(make_workdir: Callable[..., Path]) -> None:
    work = make_workdir(min_window_s=120.0)
    proc = subprocess.Popen(
        [*EXPERIMENT, str(work)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = [ev.event for ev in read_progress(work / "progress.jsonl")]
        if "batch" in events:
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    code = proc.wait(timeout=10)
    elapsed = time.monotonic() - sent
    assert code == 1
    assert elapsed < 2.0
    error = error_of(work)
    assert error.type == "Interrupted" and "SIGTERM" in error.message
    assert not (work / "result.json").exists()


def test_tiny_model_module_is_runnable(tmp_path: Path) -> None:
    proc = run(
        [
            sys.executable,
            "-m",
            "llenergymeasure.experiment.tiny_model",
            str(tmp_path / "m"),
            "--layers",
            "1",
            "--hidden",
            "32",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (1, 32)
    assert (tmp_path / "m" / "model.safetensors").stat().st_mode & 0o004
