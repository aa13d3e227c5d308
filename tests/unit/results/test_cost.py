"""A run's device time by phase, and a search's spending against its grid (`results.cost`),
from a search run on the simulated executor."""

from __future__ import annotations

import math

import pytest

from helpers.races import raced
from llenergymeasure.results.cost import PHASES, run_cost
from llenergymeasure.results.load import RunData, StudyData, load_study_results
from llenergymeasure.results.race_view import runs_spent
from llenergymeasure.results.search import search_view


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> StudyData:
    return load_study_results(raced(tmp_path_factory.mktemp("settled"), "settled"))


def finished_run(study: StudyData) -> RunData:
    run = next(r for r in study.runs if r.result is not None and r.record is not None)
    assert run.record is not None and run.result is not None
    return run


def test_a_runs_cost_is_its_wall_time_by_phase_times_its_gpus(study: StudyData) -> None:
    run = finished_run(study)
    assert run.record is not None and run.result is not None
    t = run.result.timings
    held = run.record.model_copy(update={"duration_s": t.total_s + 4.0, "gpu_indices": [0, 1]})
    cost = run_cost(held, run.result)
    assert cost is not None and cost.unit == "GPU-s" and cost.gpus == 2
    assert cost.seconds["container"] == pytest.approx(4.0)
    assert cost.seconds["load"] == pytest.approx(t.load_s + t.tokenisation_s)
    assert cost.seconds["window"] == t.window_s and cost.seconds["warmup"] == t.warmup_s
    inside = t.load_s + t.tokenisation_s + t.baseline_s + t.warmup_s + t.window_s
    assert cost.seconds["other"] == pytest.approx(t.total_s - inside)
    assert cost.total == pytest.approx(2 * (t.total_s + 4.0))  # two GPUs held the whole time
    assert set(cost.seconds) <= set(PHASES)


def test_a_cpu_run_costs_run_seconds_and_a_run_without_a_result_is_unfinished(
    study: StudyData,
) -> None:
    run = finished_run(study)
    assert run.record is not None
    cpu = run.record.model_copy(update={"duration_s": 12.0, "gpu_indices": []})
    cost = run_cost(cpu, None)
    assert cost is not None and cost.unit == "run-s"
    assert cost.seconds == {"unfinished": 12.0} and not cost.finished and cost.total == 12.0
    assert run_cost(cpu.model_copy(update={"duration_s": None}), None) is None


def test_a_search_spends_its_runs_costs_by_purpose_against_the_grid(study: StudyData) -> None:
    view = search_view(study)
    assert view is not None
    cell = view.cells[0]
    cost = cell.cost
    assert cost is not None and cost.unit == "run-s"  # the simulated study has no GPU
    costs = {r.planned.run_id: run_cost(r.record, r.result) for r in study.runs}
    assert cost.total == pytest.approx(sum(c.total for c in costs.values() if c is not None))
    assert {p: s.runs for p, s in cost.spent.items()} == cell.runs
    finished = [c.total for c in costs.values() if c is not None and c.finished]
    assert cost.mean_run == pytest.approx(sum(finished) / len(finished))
    assert cost.grid_estimate == pytest.approx(6 * cost.mean_run)  # the grid's 6 points
    assert cost.of_grid == pytest.approx(cost.total / cost.grid_estimate)

    body = view.as_json()["cost"]
    assert body["unit"] == "run-s" and body["spent"]["confirmation"]["runs"] > 0
    assert body["grid_estimate"]["how"].startswith("modelled")
    assert math.isclose(body["of_grid"], cost.of_grid, rel_tol=1e-3)
    assert runs_spent(view.search, cell).endswith(f"{cost.of_grid:.1%} of it")
