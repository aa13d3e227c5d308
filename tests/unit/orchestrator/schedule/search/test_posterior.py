"""The GP's chance that an untried configuration beats the incumbent, and the stop that waits
on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from helpers.results import Figures
from helpers.simulated import search_run, search_study
from llenergymeasure.orchestrator.schedule.search import stopping
from llenergymeasure.orchestrator.schedule.search.posterior import CHANCE_KEY, untried_points
from llenergymeasure.orchestrator.schedule.search.sampler import CellSampler
from llenergymeasure.results.search import Judgement
from llenergymeasure.study.expand import expand
from llenergymeasure.study.manifest import load_manifest
from llenergymeasure.study.sampler_choice import SamplerChoice, gp_installed
from llenergymeasure.study.search_space import cells_of, search_plan_of

J = "energy.j_per_output_token"
needs_gp = pytest.mark.skipif(not gp_installed(), reason="the search extra (torch, scipy)")
SPACE = {"max_new_tokens": [8, 16, 24, 32], "n_prompts": [1, 2, 3, 4]}
EVERY_POINT = [{"max_new_tokens": t, "n_prompts": n} for t in (8, 16, 24, 32) for n in (1, 2, 3, 4)]


def bowl_value(params: dict[str, Any]) -> float:
    """Best (1.0) at 24 tokens and 3 prompts; 9.0 at the corner (8, 1)."""
    return 1 + ((params["max_new_tokens"] - 24) / 8) ** 2 + (params["n_prompts"] - 3) ** 2


def chance_after(history: list[dict[str, Any]], objectives: int = 1) -> float | None:
    """The chance the GP notes at the ask after `history` was told."""
    goals: dict[str, Any] = {"objective": {"minimize": J}}
    if objectives == 2:
        goals = {"objectives": [{"minimize": J}, {"minimize": "latency.ttft_ms.p50"}]}
    study = search_study({**goals, "space": SPACE, "seed": 5})
    assert study.search is not None
    plan = search_plan_of(study.search, expand(study), lambda path: path)
    sampler = CellSampler(study.search, cells_of(plan)[0], SamplerChoice("gp", startup=5))
    for number, params in enumerate(history):
        value = bowl_value(params)
        sampler.tell(number, params, {}, Judgement(True, [value] * objectives, [], [0.0], None))
    return sampler.ask(len(history))[1].get(CHANCE_KEY)


@needs_gp
def test_an_unexplored_region_keeps_a_high_chance_and_a_searched_space_a_low_one() -> None:
    corner = [p for p in EVERY_POINT if p["max_new_tokens"] <= 16 and p["n_prompts"] <= 3]
    assert (chance_after(corner) or 0.0) >= 0.2  # the bowl's floor is untried
    all_but_worst = [p for p in EVERY_POINT if p != {"max_new_tokens": 8, "n_prompts": 1}]
    chance = chance_after(all_but_worst)
    assert chance is not None and chance < stopping.CHANCE_STOP
    assert chance_after(EVERY_POINT) == 0.0


@needs_gp
def test_several_objectives_give_no_chance() -> None:
    assert chance_after(EVERY_POINT[:8], objectives=2) is None


def study_with(distributions: dict[str, Any], asked: list[dict[str, Any]]) -> optuna.Study:
    study = optuna.create_study()
    for params in asked:
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE, value=1.0, params=params, distributions=distributions
            )
        )
    return study


def test_the_untried_points_of_a_finite_space_are_listed_less_those_asked() -> None:
    space = {
        "b": IntDistribution(0, 3),
        "p": CategoricalDistribution(["fp16", "bf16"]),
        "s": IntDistribution(8, 24, step=8),
        "m": FloatDistribution(0.5, 0.7, step=0.1),
    }
    # 0.6 as Optuna may hold it: a float sum a digit off the listed value
    asked = {"b": 1, "p": "bf16", "s": 16, "m": 0.6000000000000001}
    untried = untried_points(study_with(space, [asked]), space)
    assert untried is not None and len(untried) == 4 * 2 * 3 * 3 - 1
    assert not any(
        (p["b"], p["p"], p["s"], round(p["m"], 6)) == (1, "bf16", 16, 0.6) for p in untried
    )
    assert {"b": 3, "p": "fp16", "s": 24, "m": 0.5} in untried


def test_a_real_valued_or_too_large_space_is_not_listed() -> None:
    assert untried_points(study_with({}, []), {"t": FloatDistribution(0.0, 1.0)}) is None
    huge = {"a": IntDistribution(0, 999), "b": IntDistribution(0, 999)}
    assert untried_points(study_with({}, []), huge) is None


# the stop ---------------------------------------------------------------------------------------


def flat(swept: dict) -> Figures:
    return Figures(tokens_per_s=100.0, j_per_token=0.5 + swept["n_prompts"] / 1000)


def gp_search(**more: Any) -> Any:
    return search_study(
        {
            "objective": {"minimize": J},
            "space": {"n_prompts": {"low": 1, "high": 30}},
            "sampler": "gp",
            "seed": 2,
            "patience": 4,
            "confirm": {"top": 0},
            **more,
        }
    )


@needs_gp
def test_the_stop_says_the_models_chance_once_it_is_low(tmp_path: Path) -> None:
    search_run(tmp_path, gp_search(trials=30), flat).run()
    record = load_manifest(tmp_path / "study").search
    reason = record.stopped[0]
    assert reason.startswith("no improvement") and "chance of beating it" in reason
    chances = [t.sampler_attrs.get(CHANCE_KEY) for t in record.trials]
    assert chances[-1] is not None and chances[-1] < stopping.CHANCE_STOP
    assert len([t for t in record.trials if not t.reused]) < 30


@needs_gp
def test_a_model_that_still_sees_better_keeps_the_search_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same search, with a threshold every chance reaches: floor and window met, it asks on
    until its trials are spent."""
    monkeypatch.setattr(stopping, "CHANCE_STOP", 0.0)
    search_run(tmp_path, gp_search(trials=12), flat).run()
    reason = load_manifest(tmp_path / "study").search.stopped[0]
    assert reason.startswith("trials: 12")
