"""Serving mode end to end on the vllm-cpu image: vLLM's own OpenAI-compatible server in the
container, the open-loop generator on loopback (the study is offline: network none), two
request rates, the steady state, goodput, the per-request Parquet file; a server that is never
ready in time, and one killed in the middle of the load."""

from __future__ import annotations

import json
import os

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

RATES = [4.0, 12.0]
SECRET = "hf_llemServingSecret0123456789"
DURATION_S = 12.0


def _study(tmp_path, serving: dict, **top) -> object:
    return vllm_cpu_serving_study(
        tmp_path,
        n_prompts=16,
        prompts={"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 16}},
        serving=serving,
        **top,
    )


def test_a_serving_study_at_two_rates(tmp_path, vllm_cpu_image):
    study = _study(
        tmp_path,
        {
            "duration_s": DURATION_S,
            "warmup_requests": 4,
            "min_steady_s": 5,
            "slice_s": 2,
            "slo": {"ttft_ms": 2000, "e2e_ms": 4000},
            "seed": 1,
        },
        sweep={"serving.request_rate": RATES},
    )
    # a secret in llem's environment: in no file
    env = {**os.environ, "HF_TOKEN": SECRET}
    proc = llem("run", str(study), "--yes", cwd=tmp_path, timeout=1500, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    for path in study_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), f"the token is in {path}"
    record = load_manifest(study_dir)
    results = sorted(
        (
            ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
            for run in record.runs.values()
        ),
        key=lambda r: r.serving.target_request_rate,
    )
    for result, rate in zip(results, RATES, strict=True):
        serving = result.serving
        work = study_dir / "experiments" / result.context.run_id
        assert serving.target_request_rate == rate
        assert serving.achieved_request_rate == pytest.approx(rate, rel=0.35)  # Poisson, ~1 min
        assert serving.requests_failed == 0 and serving.requests_completed == serving.requests_sent
        # the ramp is short at this load: most of the sending period is steady
        assert 0 <= serving.steady_start_s < serving.steady_end_s <= DURATION_S
        assert result.timings.window_s > DURATION_S / 2
        assert result.timings.window_s == pytest.approx(
            serving.steady_end_s - serving.steady_start_s
        )
        for figure in (result.latency.ttft_ms, result.latency.itl_ms, serving.tpot_ms):
            assert figure is not None and figure.p50 > 0
        assert result.latency.request_ms.p99 >= result.latency.ttft_ms.p50
        assert serving.goodput_requests_per_s is not None and 0 <= serving.goodput_fraction <= 1
        assert serving.send_lag_ms.p50 < 50
        # no GPU: every energy figure null, with its reason, never 0
        assert result.energy.gpu_j is None and "ran on CPU" in result.energy.gpu_j_reason
        assert serving.j_per_request is None and serving.j_per_slo_request_reason
        requests = pd.read_parquet(work / serving.requests_file)
        assert len(requests) == serving.requests_sent + serving.warmup_requests
        assert requests["warmup"].sum() == 4 and requests["error"].isna().all()
        assert (requests["output_tokens"] == 8).all()
        assert (requests["ttft_ms"] <= requests["e2e_ms"]).all()
        assert len(pd.read_parquet(work / serving.slices_file)) >= DURATION_S / 2
        assert "--served-model-name" in serving.server and (work / "server.log").is_file()
        gauges = pd.read_parquet(work / serving.server_metrics_file)
        assert {"num_requests_running", "num_requests_waiting"} <= set(gauges["metric"])
    shown = llem("results", "show", str(study_dir), cwd=tmp_path, timeout=120)
    assert shown.returncode == 0 and "goodput" in shown.stdout, shown.stderr
    report = llem("results", "plot", str(study_dir), "-o", str(tmp_path / "plots"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "plots" / "serving_rate.png").is_file()
    html = llem("results", "report", str(study_dir), cwd=tmp_path)
    assert html.returncode == 0, html.stderr
    page = (study_dir / "report.html").read_text()
    assert "Goodput (requests meeting every SLO)" in page and "GPU energy per SLO-meeting" in page


def test_a_server_never_ready_in_time_fails_with_its_log(tmp_path, vllm_cpu_image):
    study = _study(tmp_path, {"n_requests": 4, "readiness_timeout_s": 1})
    proc = llem("run", str(study), cwd=tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    assert run.outcome == "failed" and run.error_type == "ServerFailed"
    assert "not ready within serving.readiness_timeout_s (1 s)" in run.error


def test_a_server_killed_mid_load_fails_and_keeps_the_records(tmp_path, client, vllm_cpu_image):
    study = _study(tmp_path, {"request_rate": 5, "duration_s": 120})
    proc = run_and_kill_server(study, tmp_path, client, '"batch"')
    assert proc.returncode == 1, proc.stdout[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    assert run.outcome == "failed" and "died during the load" in run.error
    work = study_dir / "experiments" / run.run_id
    requests = pd.read_parquet(work / "requests.parquet")
    assert requests["end_s"].notna().any()  # the records of the requests that ended are kept
    assert read_json(work / "error.json")["type"] == "ServerFailed"


def test_a_search_trial_whose_ttft_bound_cannot_be_met_is_pruned(tmp_path, vllm_cpu_image):
    """TTFT p99 <= 1 ms on a CPU server: the trial's load stops once that is settled, well
    before its 150 planned requests; the trial is infeasible and shown pruned, its requests so
    far kept."""
    planned = 150
    study = _study(
        tmp_path,
        {"request_rate": 4, "n_requests": planned, "warmup_requests": 2, "seed": 1},
        search={
            "objective": {"maximize": "throughput.output_tokens_per_s"},
            "constraints": ["latency.ttft_ms.p99 <= 1"],
            "space": {"max_new_tokens": [8, 9]},
            "trials": 1,
            "confirm": {"top": 0},
            "pruner": "constraints",
        },
    )
    proc = llem("run", str(study), cwd=tmp_path, timeout=900)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # nothing feasible
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    assert run.error_type == "TrialPruned"
    assert "pruned: latency.ttft_ms.p99 <= 1 cannot be met" in run.error
    config = read_json(study_dir / "experiments" / run.run_id / "config.json")
    assert config["context"]["prune"][0]["metric"] == "latency.ttft_ms.p99"
    requests = pd.read_parquet(study_dir / "experiments" / run.run_id / "requests.parquet")
    assert len(requests) == planned
    sent = requests["sent_s"].notna().sum()
    assert 10 <= sent < planned / 3  # stopped well before its planned requests

    shown = llem("results", "show", str(study_dir), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    search = json.loads(shown.stdout)["search"]
    (trial,) = search["trials"]
    assert trial["state"] == "pruned" and "cannot be met" in trial["reason"]
    assert search["cost"]["spent"]["search"]["pruned"] == 1
