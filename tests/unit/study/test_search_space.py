"""A search's space over the study's cells, and the runs rebuilt from the manifest."""

from __future__ import annotations

import pytest

from helpers.factories import study_record
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.errors import UserError
from llenergymeasure.study.expand import expand
from llenergymeasure.study.manifest import Manifest, load_manifest
from llenergymeasure.study.manifest_models import ConfirmRecord, SearchRecord, TrialRecord
from llenergymeasure.study.search_space import SearchRuns, cells_of, search_plan_of


def study(space: dict, **more) -> StudyConfig:
    return StudyConfig.model_validate(
        {
            "name": "s",
            "defaults": {"model": "stub:m"},
            "search": {"objective": {"minimize": "energy.j_per_output_token"}, "space": space},
            **more,
        }
    )


def plan_of(config: StudyConfig):
    return search_plan_of(config.search, expand(config), lambda path: f"study.yaml<{path}>")


def test_a_backend_scoped_key_belongs_to_that_backends_cells() -> None:
    config = study(
        {"n_prompts": [1, 2], "pytorch.batch_size": {"low": 1, "high": 8}},
        sweep={"backend": ["pytorch", "vllm"]},
    )
    cells = cells_of(plan_of(config))
    keys = {cell.plan.config.backend: [k.key for k in cell.keys] for cell in cells}
    assert keys == {"pytorch": ["n_prompts", "pytorch.batch_size"], "vllm": ["n_prompts"]}


def test_a_scoped_key_no_cell_uses_is_refused() -> None:
    with pytest.raises(UserError) as caught:
        plan_of(study({"vllm.max_num_seqs": [8, 16]}))
    assert "study.yaml<search.space.vllm.max_num_seqs>" in str(caught.value)
    assert "no configuration of the study uses it" in str(caught.value)


def test_a_value_the_contract_refuses_outright_is_a_mistake_at_its_key() -> None:
    with pytest.raises(UserError) as caught:
        plan_of(study({"max_new_tokens": {"low": -4, "high": 16}}))
    assert "max_new_tokens>: search.space.max_new_tokens: value -4" in str(caught.value)


def test_a_combination_rule_is_left_to_the_search() -> None:
    plan = plan_of(study({"decoding.top_k": [0, 50]}))  # top_k 50 needs temperature > 0
    made = cells_of(plan)[0].configure({"decoding.top_k": 50})
    assert made.config is None and "greedy decoding" in (made.rejected or "")
    assert cells_of(plan)[0].configure({"decoding.top_k": 0}).config_hash is not None


def test_the_runs_are_rebuilt_from_the_records_in_run_order(tmp_path) -> None:
    plan = plan_of(study({"n_prompts": {"low": 1, "high": 9}}))
    live = SearchRuns(plan)
    first = live.add(0, {"n_prompts": 3}, 0, 0)
    second = live.add(0, {"n_prompts": 5}, 1, 0)
    again = live.add(0, {"n_prompts": 3}, 2, 1)
    assert first and second and again
    assert again.config_index == first.config_index != second.config_index
    record = SearchRecord(
        trials=[
            TrialRecord(
                cell=0,
                number=0,
                params={"n_prompts": 3},
                config_hash=first.config_hash,
                run_id=first.run_id,
                run_index=0,
            ),
            TrialRecord(
                cell=0,
                number=1,
                params={"n_prompts": 5},
                config_hash=second.config_hash,
                run_id=second.run_id,
                run_index=1,
            ),
            TrialRecord(
                cell=0,
                number=2,
                params={"n_prompts": 3},
                config_hash=first.config_hash,
                run_id=first.run_id,
                reused=True,
            ),
        ],
        confirms=[
            ConfirmRecord(
                cell=0,
                params={"n_prompts": 3},
                config_hash=first.config_hash,
                run_id=again.run_id,
                run_index=2,
                cycle=1,
            )
        ],
    )
    rebuilt = SearchRuns.rebuilt(plan, record)
    assert rebuilt.runs == live.runs
    # the record round-trips through the manifest's journal
    with Manifest.create(tmp_path, study_record()) as manifest:
        for trial in record.trials:
            manifest.add_trial(trial)
        manifest.add_confirm(record.confirms[0])
        manifest.stop_search(0, "trials: 2 distinct configurations run")
    loaded = load_manifest(tmp_path).search
    assert loaded == record.model_copy(
        update={"stopped": {0: "trials: 2 distinct configurations run"}}
    )


def test_a_record_that_no_longer_makes_its_run_is_refused() -> None:
    plan = plan_of(study({"n_prompts": {"low": 1, "high": 9}}))
    run = SearchRuns(plan).add(0, {"n_prompts": 3}, 0, 0)
    assert run is not None
    record = SearchRecord(
        trials=[
            TrialRecord(
                cell=0,
                number=0,
                params={"n_prompts": 4},
                config_hash=run.config_hash,
                run_id=run.run_id,
                run_index=0,
            )
        ]
    )
    with pytest.raises(UserError) as caught:
        SearchRuns.rebuilt(plan, record)
    assert "plan.json was changed" in str(caught.value)


@pytest.mark.parametrize(
    "trials, fragment",
    [
        ([TrialRecord(cell=3, number=0, params={}, rejected="x")], "names cell 3"),
        (
            [TrialRecord(cell=0, number=1, params={}, rejected="x")],
            "cell 0's trial 1 is out of order",
        ),
    ],
)
def test_search_lines_that_do_not_fit_the_plan_are_refused(trials, fragment) -> None:
    plan = plan_of(study({"n_prompts": {"low": 1, "high": 9}}))
    with pytest.raises(UserError) as caught:
        SearchRuns.rebuilt(plan, SearchRecord(trials=trials))
    assert fragment in str(caught.value)
