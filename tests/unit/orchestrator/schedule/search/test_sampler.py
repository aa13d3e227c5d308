"""The cell sampler: lists of numbers as ordinals (values recorded, values replayed), a model's
repeated suggestion replaced, and the GP sampler's resume guarantee through the real
scheduler, manifest and sampler on the simulated executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

from helpers.results import Figures
from helpers.simulated import (
    next_suggestions_twice,
    search_run,
    search_study,
    stopping_after,
    trial_lines,
)
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.orchestrator.schedule.search.sampler import CellSampler, distribution
from llenergymeasure.results.search import Judgement
from llenergymeasure.study.expand import expand
from llenergymeasure.study.sampler_choice import SamplerChoice, gp_installed
from llenergymeasure.study.search_space import cells_of, search_plan_of

J = "energy.j_per_output_token"
needs_gp = pytest.mark.skipif(not gp_installed(), reason="the search extra (torch, scipy)")


def cell_sampler(space: dict[str, Any], choice: SamplerChoice | None = None) -> CellSampler:
    study = search_study({"objective": {"minimize": J}, "space": space, "seed": 5})
    assert study.search is not None
    plan = search_plan_of(study.search, expand(study), lambda path: path)
    return CellSampler(study.search, cells_of(plan)[0], choice)


def feasible(value: float) -> Judgement:
    return Judgement(True, [value], [], [0.0], None)


def test_a_list_of_numbers_is_an_integer_over_the_indices_of_its_sorted_values() -> None:
    assert distribution([64, 8, 32]) == IntDistribution(0, 2)
    assert distribution([0.9, 0, 0.5, 1]) == IntDistribution(0, 3)  # ints and floats: numbers
    assert distribution([True, False]) == CategoricalDistribution([True, False])
    assert distribution(["fp16", "bf16"]) == CategoricalDistribution(["fp16", "bf16"])
    assert distribution([None, 50]) == CategoricalDistribution([None, 50])


def test_suggestions_are_values_and_optuna_holds_their_sorted_indices() -> None:
    sampler = cell_sampler(
        {"max_new_tokens": [64, 8, 32, 16], "precision": ["fp16", "bf16"]},
        SamplerChoice("random"),
    )
    for number in range(12):
        params, notes = sampler.ask(number)
        assert params["max_new_tokens"] in (8, 16, 32, 64)
        assert params["precision"] in ("fp16", "bf16")
        internal = sampler.study.trials[number].params
        assert internal["max_new_tokens"] == [8, 16, 32, 64].index(params["max_new_tokens"])
        assert internal["precision"] == params["precision"]
        sampler.tell(number, params, notes, feasible(float(number)))


def test_the_manifest_records_the_values(tmp_path: Path) -> None:
    study = search_study(
        {
            "objective": {"minimize": J},
            "space": {"max_new_tokens": [64, 8, 32, 16], "n_prompts": [3, 1, 2]},
            "trials": 6,
            "sampler": "tpe",
            "confirm": {"top": 0},
        }
    )
    run = search_run(
        tmp_path, study, lambda s: Figures(100.0, j_per_token=s["max_new_tokens"] / 10)
    )
    assert run.run() == 0
    recorded = [line["params"] for line in trial_lines(tmp_path / "study")]
    assert len(recorded) >= 6
    assert all(p["max_new_tokens"] in (8, 16, 32, 64) for p in recorded)
    assert all(p["n_prompts"] in (1, 2, 3) for p in recorded)
    assert {p["max_new_tokens"] for p in recorded} - {0, 1, 2, 3}  # values, not indices


def test_records_of_values_replay_as_indices_and_the_study_goes_on() -> None:
    """Trial lines as the previous version wrote them (values; its TPE's notes naming values)
    are added to the rebuilt study as indices of the sorted list."""
    sampler = cell_sampler(
        {"max_new_tokens": [64, 8, 32], "decoding.temperature": [0.7, 0, 1.0]},
        SamplerChoice("tpe", startup=2),
    )
    records = [
        ({"max_new_tokens": 64, "decoding.temperature": 0.7}, 3.0),
        ({"max_new_tokens": 8, "decoding.temperature": 0}, 2.0),
        ({"max_new_tokens": 32, "decoding.temperature": 1.0}, 1.0),
    ]
    for number, (params, value) in enumerate(records):
        notes = {"tpe:relative_params:0": f'{{"max_new_tokens": {params["max_new_tokens"]}}}'}
        sampler.tell(number, params, notes, feasible(value))
    assert [t.params for t in sampler.study.trials] == [
        {"max_new_tokens": 2, "decoding.temperature": 1},
        {"max_new_tokens": 0, "decoding.temperature": 0},
        {"max_new_tokens": 1, "decoding.temperature": 2},
    ]
    params, _ = sampler.ask(3)
    assert params["max_new_tokens"] in (8, 32, 64)
    assert params["decoding.temperature"] in (0, 0.7, 1.0)


def test_the_grid_sampler_lists_a_list_of_numbers_by_its_indices(tmp_path: Path) -> None:
    sampler = cell_sampler({"max_new_tokens": [64, 8, 32]}, SamplerChoice("grid"))
    asked = set()
    for number in range(3):
        params, notes = sampler.ask(number)
        asked.add(params["max_new_tokens"])
        sampler.tell(number, params, notes, feasible(1.0))
    assert asked == {8, 32, 64}


@needs_gp
def test_a_gp_suggestion_of_a_point_already_asked_is_replaced_by_a_random_draw() -> None:
    """Where the GP alone would ask for a point already measured, the sampler gives the draw
    a random sampler of the same seed gives; elsewhere the GP's own suggestion."""
    space = {"max_new_tokens": [8, 16, 24, 32], "n_prompts": [1, 2, 3, 4]}
    history = [{"max_new_tokens": t, "n_prompts": n} for t in (8, 16, 24) for n in (1, 2, 3, 4)]

    def next_suggestion(choice: SamplerChoice, number: int) -> dict[str, Any]:
        sampler = cell_sampler(space, choice)
        for i, params in enumerate(history):
            value = 1 + ((params["max_new_tokens"] - 16) / 8) ** 2 + params["n_prompts"]
            sampler.tell(i, params, {}, feasible(value))
        return sampler.ask(number)[0]

    repeated = 0
    for number in range(len(history), len(history) + 6):
        alone = next_suggestion(SamplerChoice("gp", startup=5, no_repeats=False), number)
        fresh = next_suggestion(SamplerChoice("gp", startup=5), number)
        if alone in history:
            repeated += 1
            assert fresh == next_suggestion(SamplerChoice("random"), number)
        else:
            assert fresh == alone
    assert repeated  # the case this test is about happened


# the GP sampler's resume guarantee ------------------------------------------------------------


def valley(swept: dict) -> Figures:
    n, b = swept["n_prompts"], swept["max_new_tokens"]
    return Figures(tokens_per_s=100.0, j_per_token=0.1 + (n - 7) ** 2 / 100 + (b - 40) ** 2 / 1e4)


def gp_space(**more: Any) -> dict:
    return {
        "objective": {"minimize": J},
        "space": {"n_prompts": {"low": 1, "high": 20}, "max_new_tokens": [8, 16, 24, 32, 48, 64]},
        "sampler": "gp",
        "seed": 3,
        "confirm": {"top": 0},
        **more,
    }


@needs_gp
def test_a_resumed_gp_search_suggests_what_the_uninterrupted_one_did(tmp_path: Path) -> None:
    study = search_study(gp_space(trials=11))
    search_run(tmp_path / "a", study, valley).run()
    expected = [line["params"] for line in trial_lines(tmp_path / "a" / "study")]

    stop = StopState()
    first = search_run(tmp_path / "b", study, stopping_after(valley, stop, runs=7), stop=stop)
    assert first.run() == 130
    second = search_run(tmp_path / "b", study, valley, study_dir=tmp_path / "b" / "study")
    assert second.run() == 0
    resumed = [line["params"] for line in trial_lines(tmp_path / "b" / "study")]
    assert resumed == expected
    assert len(expected) >= 11  # past the 5 random trials: the GP asked the rest


@needs_gp
def test_a_rebuilt_gp_study_with_runs_in_flight_asks_the_same(tmp_path: Path) -> None:
    """Two llems resuming the same record, three runs in flight (the GP's batch acquisition
    over the running trials): the same next suggestions."""

    study = search_study(gp_space(trials=20), max_parallel=1)
    stop = StopState()
    search_run(tmp_path, study, stopping_after(valley, stop, runs=8), stop=stop).run()
    study_dir = tmp_path / "study"
    suggestions = next_suggestions_twice(study_dir, max_open=3)
    assert len(suggestions[0]) == 3 and suggestions[0] == suggestions[1]
