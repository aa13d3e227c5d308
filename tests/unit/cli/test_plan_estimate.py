"""`llem plan`'s estimate and timeouts: one duration model for offline and serving runs, the same
numbers in text and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from helpers.cli import run_llem as llem
from llenergymeasure.cli.plan import _duration
from llenergymeasure.config.study import TIMEOUT_ESTIMATE_FACTOR, TIMEOUT_SLACK_S

SERVING = (
    "name: s\nmodel: m\nbackend: vllm\nmode: serving\n"
    "serving: {duration_s: 7200, request_rate: 2}\n"
)


def plan_json(study: Path) -> dict:
    code, out, err = llem("plan", str(study), "--json")
    assert code == 0, err
    return json.loads(out)


def test_plan_json_shows_a_serving_runs_estimate_and_timeout(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(SERVING)
    plan = plan_json(study)
    estimate = plan["configs"][0]["estimate"]
    assert estimate["measured_s"] == 7200
    assert estimate["method"].startswith("serving, one load")
    assert estimate["timeout_s"] == math.ceil(
        TIMEOUT_ESTIMATE_FACTOR * estimate["total_s"] + TIMEOUT_SLACK_S
    )
    assert estimate["timeout_s"] > 7200
    assert math.isclose(plan["estimated_wall_time"]["total_s"], estimate["total_s"])
    assert "drain" in plan["estimated_wall_time"]["method"]


def test_plan_text_says_the_same_total_and_timeout(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(SERVING)
    plan = plan_json(study)
    code, out, err = llem("plan", str(study))
    assert code == 0, err
    assert f"Estimated wall time {_duration(plan['estimated_wall_time']['total_s'])}" in out
    assert f"Run timeout {_duration(plan['configs'][0]['estimate']['timeout_s'])}" in out


def test_a_configured_timeout_is_the_one_shown(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(SERVING + "execution: {experiment_timeout_s: 600}\n")
    assert plan_json(study)["configs"][0]["estimate"]["timeout_s"] == 600
    _, out, _ = llem("plan", str(study))
    assert "Run timeout 10m00s (execution.experiment_timeout_s)" in out


def test_a_searchs_estimate_is_the_same_in_text_and_json(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\nmodel: m\nsearch:\n  objective: {minimize: energy.j_per_output_token}\n"
        "  trials: 5\n  space:\n    n_prompts: [1, 2, 4]\n"
        "execution: {gap_between_experiments_s: 10}\n"
    )
    plan = plan_json(study)
    wall = plan["estimated_wall_time"]
    assert wall["n_runs"] == plan["search"]["max_runs"]
    assert wall["gaps_s"] == (wall["n_runs"] - 1) * 10
    _, out, _ = llem("plan", str(study))
    assert f"Estimated wall time {_duration(wall['total_s'])}" in out


def test_a_trace_without_duration_says_what_the_estimate_leaves_out(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,8,4\n1.5,8,4\n")
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\nmodel: m\nbackend: vllm\nmode: serving\nn_prompts: 2\n"
        "prompts: {source: trace, path: t.csv}\nserving: {n_requests: 2}\n"
    )
    plan = plan_json(study)
    assert "trace's own arrival times" in plan["configs"][0]["estimate"]["unknown"]
    assert plan["estimated_wall_time"]["not_included"] == [
        plan["configs"][0]["estimate"]["unknown"]
    ]
    _, out, _ = llem("plan", str(study))
    assert "not included: a trace's own arrival times" in out


def test_a_search_shows_its_device_budget_beside_its_grids(tmp_path: Path) -> None:
    """The same per-run guess for both: a search of at most 2 x 5 + 15 runs over a 2 x 3
    space in each of two cells (a swept model), each run holding 2 GPUs."""
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\nmodel: m\ngpu_count: 2\nsweep: {max_new_tokens: [16, 32]}\nsearch:\n"
        "  objective: {minimize: energy.j_per_output_token}\n  trials: 5\n"
        "  space:\n    n_prompts: [1, 2, 4]\n    precision: [fp16, bf16]\n"
    )
    plan = plan_json(study)
    budget = plan["device_budget"]
    assert budget["unit"] == "GPU-h"
    assert budget["search_runs"] == plan["estimated_wall_time"]["n_runs"] == 2 * (2 * 5 + 15)
    assert budget["grid_runs"] == 2 * 6
    cells = [config["estimate"]["total_s"] for config in plan["configs"]]
    per_run_h = 2 * sum(cells) / len(cells) / 3600  # the cells' mean run, two GPUs held
    assert math.isclose(budget["grid"], 12 * per_run_h)
    assert math.isclose(budget["search"], 50 * per_run_h)
    _, out, _ = llem("plan", str(study))
    assert f"the search at most {budget['search']:.3g} GPU-h (50 runs)" in out
    assert f"the grid: {budget['grid']:.3g} GPU-h (12 runs)" in out


def test_a_grid_study_has_no_device_budget(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(SERVING)
    assert plan_json(study)["device_budget"] is None
