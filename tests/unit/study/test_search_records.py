"""A search's records read back from the manifest are untrusted: each trial must be a point of
its cell's space (every key, each value listed, or in range and on its step) and make the
configuration it records, or the rebuild is refused naming the trial (study/search_space.py)."""

from __future__ import annotations

from typing import Any

import pytest

from llenergymeasure.config.study import StudyConfig
from llenergymeasure.errors import UserError
from llenergymeasure.study.expand import expand
from llenergymeasure.study.manifest_models import ConfirmRecord, SearchRecord, TrialRecord
from llenergymeasure.study.models import SearchPlan
from llenergymeasure.study.search_space import SearchRuns, cells_of, search_plan_of

SPACE = {
    "n_prompts": {"low": 1, "high": 9},
    "max_new_tokens": [16, 32],
    "decoding.temperature": {"low": 0.5, "high": 1.0, "step": 0.25},
}
GOOD = {"n_prompts": 3, "max_new_tokens": 16, "decoding.temperature": 0.75}


def plan() -> SearchPlan:
    config = StudyConfig.model_validate(
        {
            "name": "s",
            "defaults": {"model": "stub:m"},
            "search": {"objective": {"minimize": "energy.j_per_output_token"}, "space": SPACE},
        }
    )
    assert config.search is not None
    return search_plan_of(config.search, expand(config), lambda path: path)


def trial(params: dict[str, Any], number: int = 0, **more: Any) -> TrialRecord:
    made = cells_of(plan())[0].configure(params)
    fields: dict[str, Any] = {"config_hash": made.config_hash, "run_index": number}
    if made.config_hash is not None:
        fields["run_id"] = f"{number:04d}_{made.config_hash[:8]}_c0"
    return TrialRecord(cell=0, number=number, params=params, **{**fields, **more})


def test_a_trial_inside_the_space_is_rebuilt() -> None:
    runs = SearchRuns.rebuilt(plan(), SearchRecord(trials=[trial(GOOD)]))
    assert [run.swept["n_prompts"] for run in runs.runs] == [3]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"n_prompts": 50}, "n_prompts=50 is outside the search space (integers 1..9)"),
        ({"n_prompts": 3.0}, "n_prompts=3.0 is outside the search space"),
        ({"max_new_tokens": 17}, "max_new_tokens=17 is outside the search space (one of [16, 32])"),
        ({"max_new_tokens": 16.0}, "max_new_tokens=16.0 is outside"),
        ({"decoding.temperature": 0.6}, "decoding.temperature=0.6 is outside"),
        ({"decoding.temperature": 1.5}, "decoding.temperature=1.5 is outside"),
        ({"decoding.temperature": True}, "decoding.temperature=True is outside"),
        ({"pytorch.batch_size": 64}, "'pytorch.batch_size' is not a key of cell 0's search space"),
    ],
)
def test_a_trial_outside_the_space_is_refused_naming_it(change: dict, says: str) -> None:
    first = trial(GOOD)
    outside = trial({**GOOD, **change}, number=1)
    with pytest.raises(UserError) as caught:
        SearchRuns.rebuilt(plan(), SearchRecord(trials=[first, outside]))
    assert f"trial 0.1: {says}" in str(caught.value)


def test_a_trial_lacking_a_key_is_refused() -> None:
    params = {k: v for k, v in GOOD.items() if k != "max_new_tokens"}
    with pytest.raises(UserError, match=r"trial 0\.0: it gives no value for max_new_tokens"):
        SearchRuns.rebuilt(plan(), SearchRecord(trials=[trial(params)]))


def test_a_confirmation_outside_the_space_is_refused_naming_it() -> None:
    first = trial(GOOD)
    assert first.config_hash is not None and first.run_id is not None
    confirm = ConfirmRecord(
        cell=0,
        params={**GOOD, "n_prompts": 10},
        config_hash=first.config_hash,
        run_id=f"0001_{first.config_hash[:8]}_c1",
        run_index=1,
        cycle=1,
    )
    with pytest.raises(UserError) as caught:
        SearchRuns.rebuilt(plan(), SearchRecord(trials=[first], confirms=[confirm]))
    assert f"confirmation run {confirm.run_id}: n_prompts=10 is outside" in str(caught.value)


def test_a_trial_whose_parameters_do_not_make_its_configuration_is_refused() -> None:
    other = trial({**GOOD, "n_prompts": 4})
    lying = trial(GOOD).model_copy(update={"config_hash": other.config_hash})
    with pytest.raises(UserError, match=r"trial 0\.0 \(run .*\): its recorded parameters"):
        SearchRuns.rebuilt(plan(), SearchRecord(trials=[lying]))


def test_a_reused_trial_must_reuse_a_run_of_its_own_configuration() -> None:
    first = trial(GOOD)
    second = trial({**GOOD, "n_prompts": 4}, number=1)
    reuse = trial({**GOOD, "n_prompts": 5}, number=2, run_index=None, reused=True)
    reuse = reuse.model_copy(update={"run_id": first.run_id, "config_hash": first.config_hash})
    with pytest.raises(UserError, match=r"trial 0\.2 \(reusing run .*\): its recorded parameters"):
        SearchRuns.rebuilt(plan(), SearchRecord(trials=[first, second, reuse]))


@pytest.mark.parametrize(
    ("more", "says"),
    [
        ({"rejected": "no", "run_index": None}, "it was rejected, yet names a run"),
        ({"run_id": None}, "it names neither its run nor a rejection"),
        ({"run_index": None}, "it names a run it neither made nor reused"),
    ],
)
def test_a_trial_that_is_neither_a_run_nor_a_rejection_is_refused(more: dict, says: str) -> None:
    with pytest.raises(UserError, match=f"trial 0.0: {says}"):
        SearchRuns.rebuilt(plan(), SearchRecord(trials=[trial(GOOD, **more)]))


def test_run_indices_out_of_sequence_are_refused() -> None:
    skipped = trial(GOOD, number=0, run_index=None)
    skipped = skipped.model_copy(update={"run_index": 2})
    with pytest.raises(UserError, match="recorded at run index 2, not 0"):
        SearchRuns.rebuilt(plan(), SearchRecord(trials=[skipped]))
