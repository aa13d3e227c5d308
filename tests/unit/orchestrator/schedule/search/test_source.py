"""A search through the real scheduler, collector, manifest and sampler, on the simulated
executor (each run ends at once with the landscape's figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.results import Figures
from helpers.simulated import (
    next_suggestions_twice,
    search_run,
    search_study,
    stopping_after,
    trial_lines,
)
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.validity import Validity, ValidityReason
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.search import search_view
from llenergymeasure.study.manifest import load_manifest

J = "energy.j_per_output_token"
TOK = "throughput.output_tokens_per_s"


def bowl(swept: dict) -> Figures:
    """Smooth, its optimum at n_prompts 7, max_new_tokens 40; throughput grows with tokens."""
    n, b = swept["n_prompts"], swept["max_new_tokens"]
    return Figures(
        tokens_per_s=100.0 + b, j_per_token=0.1 + (n - 7) ** 2 / 100 + (b - 40) ** 2 / 1e4
    )


def space_2d(**more) -> dict:
    """TPE unless a test names another: these tests are of the search, not of `auto`'s choice
    (tests/unit/study/test_sampler_choice.py), and TPE asks in milliseconds."""
    return {
        "objective": {"minimize": J},
        "space": {"n_prompts": {"low": 1, "high": 20}, "max_new_tokens": {"low": 8, "high": 64}},
        "seed": 3,
        "sampler": "tpe",
        **more,
    }


def params_in_order(study_dir: Path) -> list[dict]:
    return [line["params"] for line in trial_lines(study_dir)]


def run_ids_started(study_dir: Path) -> list[str]:
    return [r.run_id for r in load_manifest(study_dir).runs.values() if r.attempts]


def test_a_search_runs_its_budget_races_its_best_and_names_a_winner(tmp_path: Path) -> None:
    study = search_study(space_2d(trials=25, confirm={"top": 2}))
    run = search_run(tmp_path, study, bowl)
    assert run.run() == 0
    view = search_view(load_study_results(tmp_path / "study"))
    assert view is not None
    cell = view.cells[0]
    assert cell.stopped == "trials: 25 distinct configurations run"
    own_runs = [t for t in cell.trials if t.state == "complete" and t.run_id]
    assert len({t.config_hash for t in own_runs}) == 25
    # the race: the best two trials, one fresh run each per round, interleaved (A B A B);
    # noise-free runs settle it at the second round, where the spread can first be measured
    record = load_manifest(tmp_path / "study").search
    races = [c for c in record.confirms if c.purpose == "race"]
    assert [(c.round, c.cycle) for c in races] == [(1, 1), (1, 1), (2, 2), (2, 2)]
    assert races[0].config_hash != races[1].config_hash
    assert [r.round for r in record.races] == [0, 1, 2]
    assert record.races[1].undecided and record.races[-1].ended == "settled"
    best_trial = cell.best_trial(view.search)
    assert cell.verdict.kind in ("winner", "equivalent")
    assert cell.winner is not None and cell.winner.config_hash == best_trial.config_hash
    assert cell.winner.runs == 2 and cell.winner.constraints_met
    assert cell.runs == {"search": 25, "remeasure": 0, "confirmation": 4}
    # TPE came near the bowl's floor (0.1) within 25 of its 1,140 points
    assert best_trial.values[0] < 0.13


def test_a_resumed_search_suggests_what_the_uninterrupted_one_did(tmp_path: Path) -> None:
    """One run at a time: the sampler rebuilt from the manifest continues exactly as the
    search that was not stopped; no completed trial runs again."""
    study = search_study(space_2d(trials=14, confirm={"top": 0}))
    search_run(tmp_path / "a", study, bowl).run()
    expected = params_in_order(tmp_path / "a" / "study")

    stop = StopState()
    first = search_run(tmp_path / "b", study, stopping_after(bowl, stop, runs=6), stop=stop)
    assert first.run() == 130  # interrupted as by Ctrl+C
    done_before = set(run_ids_started(tmp_path / "b" / "study"))
    second = search_run(tmp_path / "b", study, bowl, study_dir=tmp_path / "b" / "study")
    assert second.run() == 0
    assert params_in_order(tmp_path / "b" / "study") == expected
    started_again = {job.run.run_id for job in second.executor.started} & done_before
    completed = {
        r.run_id
        for r in load_manifest(tmp_path / "b" / "study").runs.values()
        if r.run_id in done_before and r.status == "completed" and r.attempts == 1
    }
    assert not (started_again & completed)  # a completed trial never runs again


def test_a_rebuilt_sampler_makes_the_same_next_suggestions(tmp_path: Path) -> None:
    """Two llems resuming the same record, several runs in flight: the same next trials."""

    study = search_study(space_2d(trials=30, confirm={"top": 0}), max_parallel=1)
    stop = StopState()
    search_run(tmp_path, study, stopping_after(bowl, stop, runs=12), stop=stop).run()
    study_dir = tmp_path / "study"
    suggestions = next_suggestions_twice(study_dir, max_open=3)
    assert len(suggestions[0]) == 3 and suggestions[0] == suggestions[1]


def test_suggestions_that_ran_already_reuse_their_run(tmp_path: Path) -> None:
    """A 2 x 2 space asked for 10 trials: 4 distinct runs, the rest reuse them, then the space
    counts as exhausted."""
    study = search_study(
        {
            "objective": {"maximize": TOK},
            "space": {"n_prompts": [1, 2], "max_new_tokens": [8, 16]},
            "trials": 10,
            "sampler": "random",
            "confirm": {"top": 0},
        }
    )
    run = search_run(tmp_path, study, bowl)
    assert run.run() == 0
    assert len(run.executor.started) == 4
    view = search_view(load_study_results(tmp_path / "study"))
    states = [t.state for t in view.cells[0].trials]
    assert states.count("complete") == 4
    assert set(states) <= {"complete", "skipped-duplicate"}
    assert "every one of the space's 4 points was suggested" in view.cells[0].stopped
    reused = [t for t in view.cells[0].trials if t.state == "skipped-duplicate"]
    assert all(t.values[0] is not None for t in reused)  # told the earlier run's figures


def test_the_grid_sampler_visits_every_point_once(tmp_path: Path) -> None:
    study = search_study(
        {
            "objective": {"maximize": TOK},
            "space": {"n_prompts": [1, 2, 3], "max_new_tokens": {"low": 8, "high": 24, "step": 8}},
            "sampler": "grid",
            "trials": 50,
            "confirm": {"top": 0},
        }
    )
    run = search_run(tmp_path, study, bowl)
    assert run.run() == 0
    points = {tuple(sorted(p.items())) for p in params_in_order(tmp_path / "study")}
    assert len(points) == 9 and len(run.executor.started) == 9


def test_rejected_combinations_failures_and_missed_constraints_are_learnt(tmp_path: Path) -> None:
    """The contract's rejection is told infeasible with no container; a crash is told
    infeasible (failed) and the search goes on; a missed constraint or a serving run without a
    steady state is infeasible with its reason."""

    def landscape(swept: dict) -> Figures | str:
        if swept["n_prompts"] == 3:
            return "CUDA out of memory"
        if swept["n_prompts"] == 2:
            return Figures(
                tokens_per_s=150, j_per_token=0.1, warnings=("steady_state_not_reached",)
            )
        return Figures(tokens_per_s=50.0 * swept["n_prompts"], j_per_token=1.0 / swept["n_prompts"])

    study = search_study(
        {
            "objective": {"minimize": J},
            "constraints": [f"{TOK} >= 100"],
            "space": {
                "n_prompts": [1, 2, 3, 4],
                "decoding.temperature": [0.0, 0.7],
                "decoding.top_k": [0, 50],
            },
            "sampler": "grid",
            "trials": 40,
            "confirm": {"top": 1},
        }
    )
    run = search_run(tmp_path, study, landscape)
    assert run.run() == 0  # something was feasible: the failures are findings
    view = search_view(load_study_results(tmp_path / "study"))
    by_state: dict[str, list] = {}
    for trial in view.cells[0].trials:
        by_state.setdefault(trial.state, []).append(trial)
    rejected = [t for t in by_state["infeasible"] if t.reason.startswith("rejected")]
    assert len(rejected) == 4  # temperature 0 with top_k 50, for each n_prompts
    assert all(t.run_id is None for t in rejected)
    # 16 points - 4 rejected, then a race of one: two fresh runs settle it (nothing to beat)
    assert len(run.executor.started) == 12 + 2
    assert all(t.params["n_prompts"] == 3 for t in by_state["failed"])
    assert all("crashed" in t.reason or "failed" in t.reason for t in by_state["failed"])
    measured = [t for t in by_state["infeasible"] if t not in rejected]
    missed = [t for t in measured if t.params["n_prompts"] == 1]
    assert missed and all("not >= 100" in t.reason for t in missed)
    unsteady = [t for t in measured if t.params["n_prompts"] == 2]
    assert unsteady and all("steady_state_not_reached" in t.reason for t in unsteady)
    assert all(t.params["n_prompts"] == 4 for t in by_state["complete"])
    assert view.cells[0].winner is not None and view.cells[0].winner.params["n_prompts"] == 4
    status = load_manifest(tmp_path / "study").status
    assert status == "completed"


def test_an_energy_reading_that_is_not_valid_cannot_win(tmp_path: Path) -> None:
    """The cheapest-looking configuration was measured on a shared GPU: infeasible, with the
    reason. The runner-up's confirmation has one run of throttled energy: it cannot win
    either, and the third is the winner."""
    calls = {4: 0}

    def landscape(swept: dict) -> Figures:
        n = swept["n_prompts"]
        if n == 1:
            return Figures(tokens_per_s=100.0, j_per_token=0.01, invalid=("foreign_processes",))
        calls[n] = calls.get(n, 0) + 1
        invalid = ("throttled",) if n == 4 and calls[4] == 3 else ()
        return Figures(tokens_per_s=100.0, j_per_token=1.0 / n, invalid=invalid)

    study = search_study(
        {
            "objective": {"minimize": J},
            "space": {"n_prompts": [1, 2, 3, 4]},
            "sampler": "grid",
            "confirm": {"top": 2},
        }
    )
    assert search_run(tmp_path, study, landscape).run() == 0
    cell = search_view(load_study_results(tmp_path / "study")).cells[0]
    (shared,) = [t for t in cell.trials if t.params["n_prompts"] == 1]
    assert shared.state == "infeasible"
    assert "GPU energy not valid: foreign_processes" in shared.reason
    by_n = {c.params["n_prompts"]: c for c in cell.confirmed}
    assert set(by_n) == {4, 3}
    assert not by_n[4].constraints_met
    assert "GPU energy not valid in 1 of 2 confirmation runs" in by_n[4].reason
    assert cell.winner is not None and cell.winner.params["n_prompts"] == 3


def small_space(**more) -> dict:
    """10 points: the stop's floor is its per-key minimum (4 feasible trials)."""
    return {"objective": {"minimize": J}, "space": {"n_prompts": {"low": 1, "high": 10}}, **more}


def test_a_search_stops_once_it_no_longer_improves_on_a_re_measured_best(tmp_path: Path) -> None:
    flat = lambda swept: Figures(tokens_per_s=100.0, j_per_token=0.5)  # noqa: E731
    study = search_study(small_space(trials=10, patience=5, confirm={"top": 0}))
    run = search_run(tmp_path, study, flat)
    run.run()
    record = load_manifest(tmp_path / "study").search
    assert record.stopped[0].startswith("no improvement: 5 trials without a 1% gain")
    # the first sets the best, five more do not beat it; then the best is run once more
    assert len(run.executor.started) == 6 + 1
    (remeasure,) = [c for c in record.confirms if c.purpose == "remeasure"]
    assert remeasure.config_hash == record.trials[0].config_hash and remeasure.cycle == 1


def test_the_floor_keeps_a_large_space_searching_past_patience(tmp_path: Path) -> None:
    from llenergymeasure.orchestrator.schedule.search import stopping

    flat = lambda swept: Figures(tokens_per_s=100.0, j_per_token=0.5)  # noqa: E731
    study = search_study(space_2d(trials=40, patience=5, confirm={"top": 0}))
    run = search_run(tmp_path, study, flat)
    run.run()
    floor = stopping.floor(study.search)
    assert floor > 6  # 1,140 points
    trials = load_manifest(tmp_path / "study").search.trials
    assert len([t for t in trials if not t.reused]) == floor


def test_a_lucky_best_is_found_out_by_its_re_measurement(tmp_path: Path) -> None:
    """n_prompts 3 draws a lucky first run (0.1) and then runs true (1.0): its re-measurement
    finds it out, the next best (n 7, 0.3) leads and is re-measured in turn before the stop."""
    seen: dict[int, int] = {}

    def lucky(swept: dict) -> Figures:
        n = swept["n_prompts"]
        seen[n] = seen.get(n, 0) + 1
        if n == 3:
            return Figures(tokens_per_s=100.0, j_per_token=0.1 if seen[n] == 1 else 1.0)
        return Figures(tokens_per_s=100.0, j_per_token=0.3 if n == 7 else 0.5)

    study = search_study(small_space(trials=10, patience=4, sampler="grid", confirm={"top": 0}))
    run = search_run(tmp_path, study, lucky)
    run.run()
    record = load_manifest(tmp_path / "study").search
    by_hash = {t.config_hash: t.params["n_prompts"] for t in record.trials}
    remeasured = [by_hash[c.config_hash] for c in record.confirms if c.purpose == "remeasure"]
    assert remeasured[0] == 3 and 7 in remeasured
    assert "re-measured best" in record.stopped[0]


def test_max_hours_stops_asking(tmp_path: Path) -> None:
    study = search_study(space_2d(trials=40, max_hours=1e-12, confirm={"top": 0}))
    run = search_run(tmp_path, study, bowl)
    run.run()
    assert load_manifest(tmp_path / "study").search.stopped[0].startswith("max_hours")
    assert len(run.executor.started) < 40


def test_nothing_feasible_is_exit_1_with_no_winner(tmp_path: Path) -> None:
    study = search_study(space_2d(trials=5, constraints=[f"{TOK} >= 1000"]))
    run = search_run(tmp_path, study, bowl)
    assert run.run() == 1
    view = search_view(load_study_results(tmp_path / "study"))
    assert view.cells[0].winner is None and not view.cells[0].confirmed
    assert any("nothing feasible to confirm" in note for note in run.notes)


def test_several_runs_in_flight_at_once(tmp_path: Path) -> None:
    """max_parallel 3: three trials asked before any is told; the budget still holds."""
    study = search_study(space_2d(trials=9, confirm={"top": 0}), max_parallel=3, gpu_ids=[0, 1, 2])
    study = study.model_copy(update={"defaults": {"model": "stub:m", "gpu_count": 1}})
    run = search_run(tmp_path, study, bowl)
    assert run.run() == 0
    lines = (tmp_path / "study" / "manifest.jsonl").read_text().splitlines()
    kinds = [json.loads(line).get("kind") for line in lines]
    first_done = next(
        i
        for i, line in enumerate(lines)
        if json.loads(line).get("kind") == "run" and json.loads(line).get("status") == "completed"
    )
    assert kinds[:first_done].count("trial") == 3
    assert len(run.executor.started) == 9


def test_a_trial_recorded_without_its_run_is_run_on_resume(tmp_path: Path) -> None:
    """A kill between a trial's line and its run's record: the rebuild makes the run."""
    study = search_study(space_2d(trials=4, confirm={"top": 0}))
    stop = StopState()
    search_run(tmp_path, study, stopping_after(bowl, stop, runs=2), stop=stop).run()
    manifest = tmp_path / "study" / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    trial = next(i for i in reversed(range(len(lines))) if '"kind":"trial"' in lines[i])
    run_id = json.loads(lines[trial])["run_id"]
    manifest.write_text("".join(lines[: trial + 1]))  # the run's own lines torn away
    resumed = search_run(tmp_path, study, bowl, study_dir=tmp_path / "study")
    assert resumed.run() == 0
    assert run_id in {job.run.run_id for job in resumed.executor.started}
    assert load_manifest(tmp_path / "study").runs[run_id].status == "completed"


def test_two_objectives_give_a_pareto_front(tmp_path: Path) -> None:
    def tradeoff(swept: dict) -> Figures:
        b = swept["max_new_tokens"]
        return Figures(tokens_per_s=10.0 * b, j_per_token=0.01 * b, ttft_p50_ms=1000.0 / b)

    study = search_study(
        {
            "objectives": [{"minimize": J}, {"minimize": "latency.ttft_ms.p50"}],
            "space": {"max_new_tokens": {"low": 8, "high": 64}},
            "sampler": "nsga2",
            "trials": 12,
            "confirm": {"top": 2},
        }
    )
    run = search_run(tmp_path, study, tradeoff)
    assert run.run() == 0
    view = search_view(load_study_results(tmp_path / "study"))
    front = view.cells[0].pareto(view.search)
    # every distinct feasible point trades one objective for the other: all on the front
    distinct = {t.config_hash for t in view.cells[0].trials if t.state == "complete"}
    assert len(front) == len(distinct) >= 2
    assert view.as_json()["cells"][0]["pareto"] and view.as_json()["best"] is None
    assert len(view.cells[0].confirmed) == 2


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_search_per_cell_of_the_sweep(tmp_path: Path, sampler: str) -> None:
    study = search_study(
        {
            "objective": {"minimize": J},
            "space": {"n_prompts": {"low": 1, "high": 20}},
            "trials": 4,
            "sampler": sampler,
            "confirm": {"top": 0},
        }
    )
    study = study.model_copy(update={"sweep": {"max_new_tokens": [16, 40]}})
    run = search_run(tmp_path, study, bowl)
    assert run.run() == 0
    view = search_view(load_study_results(tmp_path / "study"))
    assert [len(c.trials) for c in view.cells] == [4, 4]
    assert {c.swept["max_new_tokens"] for c in view.cells} == {16, 40}
    assert len(run.executor.started) == 8


def test_a_race_cut_short_by_a_kill_replays_its_rounds_and_completes_once(
    tmp_path: Path,
) -> None:
    study = search_study(space_2d(trials=6, confirm={"top": 2}))
    search_run(tmp_path / "a", study, bowl).run()
    uninterrupted = load_manifest(tmp_path / "a" / "study").search
    search_run(tmp_path, study, bowl).run()
    manifest = tmp_path / "study" / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if '"kind":"confirm"' in line)
    manifest.write_text("".join(lines[: first + 1]))  # killed after the first of four
    resumed = search_run(tmp_path, study, bowl, study_dir=tmp_path / "study")
    assert resumed.run() == 0
    record = load_manifest(tmp_path / "study").search
    assert [(c.config_hash, c.round) for c in record.confirms] == [
        (c.config_hash, c.round) for c in uninterrupted.confirms
    ]
    assert [r.model_dump() for r in record.races] == [r.model_dump() for r in uninterrupted.races]
    assert len(resumed.executor.started) == 4  # the first race run and the 3 cut off


def test_a_resume_replays_the_rounds_as_recorded_and_runs_nothing_again(
    tmp_path: Path,
) -> None:
    """A race's rounds are manifest lines: a resumed llem runs nothing of a race that ended,
    and its eliminations stand as recorded. Its verdict is read again from the runs: a
    confirmation run whose energy a newer llem finds not valid takes its configuration out of
    the race, so it cannot win."""

    def line(swept: dict) -> Figures:
        return Figures(tokens_per_s=100.0, j_per_token=1.0 / swept["n_prompts"])

    study = search_study(
        {
            "objective": {"minimize": J},
            "space": {"n_prompts": [1, 2, 3, 4]},
            "sampler": "grid",
            "confirm": {"top": 2},
        }
    )
    study_dir = tmp_path / "study"
    assert search_run(tmp_path, study, line).run() == 0
    record = load_manifest(study_dir)
    assert {c.params["n_prompts"] for c in record.search.confirms} == {3, 4}
    cell = search_view(load_study_results(study_dir)).cells[0]
    assert cell.verdict.kind == "winner" and cell.winner.params["n_prompts"] == 4
    (race_run,) = [c for c in record.search.confirms if c.params["n_prompts"] == 4 and c.round == 2]
    result_file = study_dir / "experiments" / race_run.run_id / "result.json"
    result = ExperimentResult.model_validate_json(result_file.read_text())
    energy = result.energy.model_copy(
        update={"validity": Validity.of([ValidityReason(code="throttled", detail="seen")])}
    )
    result_file.write_text(result.model_copy(update={"energy": energy}).model_dump_json())
    resumed = search_run(tmp_path, study, line, study_dir=study_dir)
    assert resumed.run() == 0
    assert resumed.executor.started == []
    cell = search_view(load_study_results(study_dir)).cells[0]
    # the leader is out; the runner-up was eliminated against it, as recorded: no winner
    assert cell.winner is None and cell.verdict.kind == "none"
    assert "GPU energy not valid in 1 of 2" in cell.verdict.eliminated[race_run.config_hash]
    assert "no confirmed configuration can win" in cell.verdict.text


def test_a_larger_budget_reopens_a_stopped_search_in_its_folder_and_races_again(
    tmp_path: Path,
) -> None:
    """trials 3, then --resume with trials 5: the same folder, two more trials (the ones an
    uninterrupted 5-trial search asks), a second race; the first three never run again."""
    five = search_study(space_2d(trials=5, confirm={"top": 2}))
    search_run(tmp_path / "a", five, bowl).run()
    uninterrupted = params_in_order(tmp_path / "a" / "study")

    study_dir = tmp_path / "study"
    assert (
        search_run(tmp_path, search_study(space_2d(trials=3, confirm={"top": 2})), bowl).run() == 0
    )
    first = load_manifest(study_dir).search
    assert first.stopped[0] == "trials: 3 distinct configurations run"
    assert first.races[-1].ended == "settled"
    started = set(run_ids_started(study_dir))

    resumed = search_run(tmp_path, five, bowl, study_dir=study_dir)
    assert resumed.run() == 0
    assert any("trials 3 -> 5" in note and "cell(s) 0 reopened" in note for note in resumed.notes)
    record = load_manifest(study_dir).search
    assert params_in_order(study_dir) == uninterrupted
    assert record.stopped[0] == "trials: 5 distinct configurations run"
    (change,) = record.budgets
    assert (change.before.trials, change.budget.trials, change.reopened) == (3, 5, [0])
    assert {r.race for r in record.races} == {0, 1} and record.races[-1].race == 1
    assert record.races[-1].ended is not None
    assert not {job.run.run_id for job in resumed.executor.started} & started
    view = search_view(load_study_results(study_dir))
    cell = view.cells[0]
    assert view.search.trials == 5 and len(view.budgets) == 1
    assert cell.race_number == 1 and cell.verdict.kind in ("winner", "equivalent")
    race_runs = [c for c in record.confirms if c.purpose == "race"]
    assert cell.runs["confirmation"] == len(race_runs)  # both races' runs are spent
    assert cell.earlier_race_runs == sum(1 for c in race_runs if c.race == 0) > 0

    again = search_run(tmp_path, five, bowl, study_dir=study_dir)  # the same budget: nothing
    assert again.run() == 0 and again.executor.started == []
    assert len(load_manifest(study_dir).search.budgets) == 1


def test_a_smaller_budget_stops_at_once_and_a_spent_space_stays_stopped(tmp_path: Path) -> None:
    study = search_study(space_2d(trials=12, confirm={"top": 0}))
    stop = StopState()
    first = search_run(tmp_path, study, stopping_after(bowl, stop, runs=6), stop=stop)
    assert first.run() == 130
    study_dir = tmp_path / "study"
    asked = len(trial_lines(study_dir))
    smaller = search_study(space_2d(trials=4, confirm={"top": 0}))
    resumed = search_run(tmp_path, smaller, bowl, study_dir=study_dir)
    resumed.run()
    record = load_manifest(study_dir).search
    assert len(trial_lines(study_dir)) == asked  # not one more trial asked
    assert record.stopped[0].startswith("trials: ")
    assert record.budgets[0].reopened == []

    flat = lambda swept: Figures(tokens_per_s=100.0, j_per_token=0.5)  # noqa: E731
    four = search_study({**small_space(space={"n_prompts": [1, 2, 3, 4]}), "trials": 10})
    spent_dir = tmp_path / "spent" / "study"
    search_run(tmp_path / "spent", four, flat).run()
    assert "every one of the space's 4 points" in load_manifest(spent_dir).search.stopped[0]
    more = search_study({**small_space(space={"n_prompts": [1, 2, 3, 4]}), "trials": 20})
    resumed = search_run(tmp_path / "spent", more, flat, study_dir=spent_dir)
    assert resumed.run() == 0 and resumed.executor.started == []
    assert load_manifest(spent_dir).search.budgets[0].reopened == []


def test_only_a_serving_trial_is_given_its_latency_constraints_to_prune_on(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    constraints = ["latency.ttft_ms.p99 <= 200", f"{TOK} >= 10", "latency.itl_ms.p99 <= 9"]
    study = search_study(
        space_2d(trials=2, constraints=constraints, pruner="constraints", confirm={"top": 0})
    )
    source = search_run(tmp_path, study, bowl).scheduler.source

    def run(cycle: int, mode: str) -> SimpleNamespace:
        return SimpleNamespace(cycle=cycle, config=SimpleNamespace(mode=mode))

    (bound,) = source.prune_bounds(run(0, "serving"))
    assert (bound.metric, bound.op, bound.bound) == ("latency.ttft_ms.p99", "<=", 200.0)
    assert source.prune_bounds(run(1, "serving")) == []  # a race's or re-measurement's run
    assert source.prune_bounds(run(0, "offline")) == []
    off = search_study(
        space_2d(trials=2, constraints=constraints, confirm={"top": 0})  # the default: none
    )
    assert (
        search_run(tmp_path / "off", off, bowl).scheduler.source.prune_bounds(run(0, "serving"))
        == []
    )


def test_a_warm_started_search_is_told_an_earlier_searchs_trials_first(tmp_path: Path) -> None:
    """A second search of the same configurations, warm-started from the first's folder: its
    sampler knows the first's trials before its first ask (recorded as `warm` lines, replayed
    on resume), so it runs the first search's best configuration within its first runs."""
    first = search_study(space_2d(trials=25, confirm={"top": 0}))
    search_run(tmp_path / "a", first, bowl).run()
    first_view = search_view(load_study_results(tmp_path / "a" / "study"))
    best = first_view.cells[0].best_trial(first_view.search)

    second = search_study(
        space_2d(trials=12, seed=11, sampler="gp", warm_start=["a/study"], confirm={"top": 0})
    )
    run = search_run(tmp_path, second, bowl)
    assert run.run() == 0
    record = load_manifest(tmp_path / "study").search
    assert len(record.warm) == 25 and {w.study_id for w in record.warm} == {"study"}
    assert any("25 earlier trial(s) told to cell(s) 0" in note for note in run.notes)
    view = search_view(load_study_results(tmp_path / "study"))
    # its first ask is the model's, not a random start: as good as the first search's best
    assert view.cells[0].trials[0].values[0] <= best.values[0]
    assert view.warm_lines() == ["warm-started cell 0 with 25 trial(s) of study (25 feasible)"]

    # a resume replays the recorded lines: the folder is not read again
    import shutil

    shutil.rmtree(tmp_path / "a")
    again = search_run(tmp_path, second, bowl, study_dir=tmp_path / "study")
    assert again.run() == 0 and again.executor.started == []
    assert len(load_manifest(tmp_path / "study").search.warm) == 25


def test_a_warm_start_from_another_image_is_refused_naming_it(tmp_path: Path) -> None:
    from llenergymeasure.errors import UserError
    from llenergymeasure.orchestrator.schedule.search.warm_start import (
        Environment,
        warm_records,
    )
    from llenergymeasure.study.search_space import cells_of

    first = search_study(space_2d(trials=3, confirm={"top": 0}))
    search_run(tmp_path / "a", first, bowl).run()
    plan = load_study_results(tmp_path / "a" / "study").search
    cells = cells_of(plan)
    other = Environment({"pytorch": "sha256:" + "f" * 64}, None)
    with pytest.raises(UserError, match=r"a/study: run .* ran on image sha256:.*, this study's"):
        warm_records(
            plan.search.model_copy(update={"warm_start": ["a/study"]}), cells, tmp_path, other
        )
    record = load_manifest(tmp_path / "a" / "study")
    image = next(iter(record.runs.values())).image_id
    same = Environment({"pytorch": image}, None)
    wider = plan.search.model_copy(update={"warm_start": ["a/study"]})
    found, notes = warm_records(wider, cells, tmp_path, same)
    assert len(found) == 3 and "3 earlier trial(s)" in notes[0]


def test_a_warm_start_of_other_configurations_tells_nothing_and_says_so(tmp_path: Path) -> None:
    search_run(tmp_path / "a", search_study(space_2d(trials=3, confirm={"top": 0})), bowl).run()
    other = search_study(
        space_2d(trials=2, warm_start=["a/study"], confirm={"top": 0}),
        defaults={"max_input_tokens": 1024},  # another workload: not the same configurations
    )
    run = search_run(tmp_path, other, bowl)
    assert run.run() == 0
    assert load_manifest(tmp_path / "study").search.warm == []
    assert any("none of its trials is a configuration of this search" in n for n in run.notes)
