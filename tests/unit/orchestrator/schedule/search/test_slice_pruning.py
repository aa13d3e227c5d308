"""An offline trial's window followed slice by slice: Optuna's pruner stops a trial that trails,
through the real scheduler, collector, manifest and search (a simulated executor whose
containers report ten slices, then run for one more look)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from helpers.results import Figures
from helpers.simulated import SlicedExecutor, search_run, search_study, trial_lines
from llenergymeasure.contract.pruning import is_pruned, slice_figures, slices_passed
from llenergymeasure.errors import UserError
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.search import search_view
from llenergymeasure.study.manifest import load_manifest

TOK = "throughput.output_tokens_per_s"


def ramp(swept: dict) -> Figures:
    """Throughput grows with max_new_tokens: half the space trails the median."""
    return Figures(tokens_per_s=float(swept["max_new_tokens"]))


def search(pruner: str = "median", trials: int = 14, **more) -> dict:
    return {
        "objective": {"maximize": TOK},
        "space": {"max_new_tokens": list(range(8, 72, 4))},
        "seed": 5,
        "sampler": "tpe",
        "trials": trials,
        "confirm": {"top": 0},
        "pruner": pruner,
        **more,
    }


def test_trailing_trials_are_stopped_recorded_pruned_and_told_pruned(tmp_path: Path) -> None:
    run = search_run(tmp_path, search_study(search()), ramp, executor=SlicedExecutor)
    assert run.run() == 0
    study_dir = tmp_path / "study"
    record = load_manifest(study_dir)
    slices = record.search.slices
    pruned = {run_id: s for run_id, s in slices.items() if s.pruned is not None}
    assert pruned, "no trial was pruned"
    assert set(run.executor.cancelled) == set(pruned)  # each asked to stop, nothing else
    for run_id, line in pruned.items():
        run_record = record.runs[run_id]
        assert run_record.status == "failed" and is_pruned(run_record.error_type)
        assert run_record.error == line.pruned and "median pruner" in line.pruned
        assert 5 <= max(line.values) < 10  # stopped at a slice past the warm-up steps
    # every followed trial run has its line: the completed ones their ten slices
    trial_runs = {t["run_id"] for t in trial_lines(study_dir) if not t.get("reused")}
    assert set(slices) == trial_runs
    for run_id in trial_runs - set(pruned):
        assert record.runs[run_id].status == "completed" and len(slices[run_id].values) == 10
    # the sampler was told them pruned, with what its pruner saw
    states = [t.state for t in run.scheduler.source.cells[0].sampler.study.trials]
    assert states.count(TrialState.PRUNED) >= len(pruned)
    # the view: pruned, counted in the search's cost, never the winner
    view = search_view(load_study_results(study_dir))
    cell = view.cells[0]
    assert {t.run_id for t in cell.trials if t.state == "pruned"} == set(pruned)
    assert cell.winner is None or cell.winner.config_hash not in {
        record.runs[r].config_hash for r in pruned
    }
    assert cell.cost is not None and cell.cost.spent["search"].pruned == len(pruned)


def test_without_a_pruner_every_trial_runs_its_window_in_full(tmp_path: Path) -> None:
    run = search_run(tmp_path, search_study(search("none")), ramp, executor=SlicedExecutor)
    assert run.run() == 0
    record = load_manifest(tmp_path / "study")
    assert run.executor.cancelled == [] and record.search.slices == {}
    assert all(r.status == "completed" for r in record.runs.values())


def test_a_resume_replays_the_pruner_and_asks_what_the_uninterrupted_search_did(
    tmp_path: Path,
) -> None:
    study = search_study(search(trials=16))
    search_run(tmp_path / "a", study, ramp, executor=SlicedExecutor).run()
    expected = [line["params"] for line in trial_lines(tmp_path / "a" / "study")]

    first = search_study(search(trials=9))
    search_run(tmp_path / "b", first, ramp, executor=SlicedExecutor).run()
    study_dir = tmp_path / "b" / "study"
    before = load_manifest(study_dir)
    resumed = search_run(tmp_path / "b", study, ramp, study_dir=study_dir, executor=SlicedExecutor)
    assert resumed.run() == 0
    after = load_manifest(study_dir)
    assert [line["params"] for line in trial_lines(study_dir)] == expected
    for run_id, line in before.search.slices.items():  # decided once, never again
        assert after.search.slices[run_id] == line
        assert after.runs[run_id].status == before.runs[run_id].status
    started = {j.run.run_id for j in resumed.executor.started}
    assert not started & set(before.search.slices)


def test_a_pruned_run_whose_end_was_not_recorded_is_recorded_pruned_on_resume(
    tmp_path: Path,
) -> None:
    """A kill between the pruner's line and the run's record: the decision stands."""
    study = search_study(search(trials=12))
    search_run(tmp_path, study, ramp, executor=SlicedExecutor).run()
    study_dir = tmp_path / "study"
    record = load_manifest(study_dir)
    run_id = next(r for r, s in record.search.slices.items() if s.pruned)
    lines = (study_dir / "manifest.jsonl").read_text().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if f'"run_id":"{run_id}"' in line)
    assert '"kind":"run"' in lines[last] and '"TrialPruned"' in lines[last]
    (study_dir / "manifest.jsonl").write_text("".join(lines[:last]))
    resumed = search_run(tmp_path, study, ramp, study_dir=study_dir, executor=SlicedExecutor)
    resumed.run()
    assert run_id not in {j.run.run_id for j in resumed.executor.started}
    again = load_manifest(study_dir).runs[run_id]
    assert again.status == "failed" and is_pruned(again.error_type)


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ({"minimize": "latency.ttft_ms.p99"}, "not reported per slice"),
        (None, "follows one objective"),
    ],
)
def test_a_slice_pruner_needs_one_objective_reported_per_slice(objective, message) -> None:
    more = (
        {"objective": objective}
        if objective is not None
        else {
            "objective": None,
            "objectives": [{"maximize": TOK}, {"minimize": "memory.peak_allocated_mb"}],
        }
    )
    with pytest.raises((UserError, ValueError), match=message):
        search_study(search(**more))


def test_the_slice_arithmetic() -> None:
    assert [slices_passed(t, 10.0) for t in (0.0, 0.99, 1.0, 5.5, 10.0, 30.0)] == [
        0,
        0,
        1,
        5,
        10,
        10,
    ]
    assert slices_passed(1.0, 0.0) == 10  # no minimum window: the first batch ends it
    assert slice_figures(200, 2.0, 50.0) == {
        "throughput.output_tokens_per_s": 100.0,
        "energy.j_per_output_token": 0.25,
        "energy.output_tokens_per_j": 4.0,
    }
    assert slice_figures(200, 2.0, None) == {"throughput.output_tokens_per_s": 100.0}
    assert slice_figures(0, 0.0, 5.0) == {}


def test_the_gp_sampler_does_not_propose_a_pruned_configuration_again(tmp_path: Path) -> None:
    """Optuna's GP leaves pruned trials out of its model: left alone it proposes a pruned
    point again and again (on this bowl, from the first pruned trial on), each a reuse of the
    pruned run, until the cell counts as exhausted."""
    space = {"n_prompts": list(range(1, 21)), "max_new_tokens": list(range(8, 161, 8))}

    def bowl(swept: dict) -> Figures:
        u, v = (swept["n_prompts"] - 13) / 6, (swept["max_new_tokens"] / 8 - 6) / 5
        return Figures(tokens_per_s=100.0, j_per_token=1 + u * u + v * v + 0.3 * u * v)

    objective = {"minimize": "energy.j_per_output_token"}
    study = search_study(search(sampler="gp", trials=30, seed=0, space=space, objective=objective))
    run = search_run(tmp_path, study, bowl, executor=SlicedExecutor)
    assert run.run() == 0
    record = load_manifest(tmp_path / "study")
    pruned = {r for r, s in record.search.slices.items() if s.pruned is not None}
    assert pruned
    again = [t for t in record.search.trials if t.reused and t.run_id in pruned]
    assert len(again) <= 2  # a random draw may repeat one; the model does not
    assert not record.search.stopped[0].startswith("exhausted")


def test_a_warm_start_tells_nothing_of_a_trial_its_pruner_stopped(tmp_path: Path) -> None:
    """A pruned trial trailed that search's trials at a slice: no figure of its configuration,
    and no reason to call it infeasible, so a later search is not told it."""
    search_run(tmp_path / "a", search_study(search()), ramp, executor=SlicedExecutor).run()
    earlier = load_manifest(tmp_path / "a" / "study").search
    pruned = {r for r, s in earlier.slices.items() if s.pruned is not None}
    assert pruned
    second = search_study(search(pruner="none", trials=3, seed=9, warm_start=["a/study"]))
    assert search_run(tmp_path, second, ramp).run() == 0
    told = {w.run_id for w in load_manifest(tmp_path / "study").search.warm}
    assert told and not told & pruned
    measured = {t.run_id for t in earlier.trials if t.run_id and not t.reused} - pruned
    assert told == measured
