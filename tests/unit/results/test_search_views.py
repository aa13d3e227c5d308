"""A search's race in words (`results.race_view`): each candidate's standing, the rounds, the runs
spent and the front, read from races run on the simulated executor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers.races import raced
from llenergymeasure.config.search import SearchConfig
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.race_view import (
    RaceRow,
    difference_text,
    front_lines,
    race_rows,
    round_lines,
    runs_spent,
)
from llenergymeasure.results.racing import Difference
from llenergymeasure.results.search import (
    CellView,
    Confirmed,
    SearchView,
    TrialView,
    search_view,
)
from llenergymeasure.results.stats import Summary


def _view(study_dir: Path) -> SearchView:
    view = search_view(load_study_results(study_dir))
    assert view is not None
    return view


@pytest.fixture(scope="module")
def settled_dir(tmp_path_factory) -> Path:
    return raced(tmp_path_factory.mktemp("settled"), "settled")


@pytest.fixture(scope="module")
def settled(settled_dir: Path) -> SearchView:
    return _view(settled_dir)


@pytest.fixture(scope="module")
def undecided(tmp_path_factory) -> SearchView:
    return _view(raced(tmp_path_factory.mktemp("undecided"), "undecided"))


@pytest.fixture(scope="module")
def trade_off(tmp_path_factory) -> SearchView:
    return _view(raced(tmp_path_factory.mktemp("trade-off"), "trade_off"))


def _by_prompts(rows: list[RaceRow]) -> dict[int, RaceRow]:
    return {row.candidate.params["n_prompts"]: row for row in rows}


def _hash(view: SearchView, n_prompts: int) -> str:
    return next(
        c.config_hash[:8] for c in view.cells[0].confirmed if c.params["n_prompts"] == n_prompts
    )


def test_each_candidate_is_shown_where_the_race_left_it(settled: SearchView) -> None:
    rows = _by_prompts(race_rows(settled.search, settled.cells[0]))
    assert set(rows) == {3, 4, 5}
    assert rows[4].status == "leader" and rows[4].differences is None
    assert rows[3].status == "not told apart from the leader by more than 5%"
    [difference] = rows[3].differences or []
    assert difference.relation == "within" and 0 < difference.relative < 0.02
    # a decision needs two runs a side: round 1 cannot eliminate, round 2 does
    assert rows[5].status == (
        f"eliminated in round 2: worse than {_hash(settled, 4)} by more than 5% "
        "(one-sided 95 % confidence)"
    )
    assert rows[5].differences is None
    assert [row.candidate.runs for row in rows.values()] == [2, 2, 2]


def test_the_rounds_say_who_was_eliminated_when_and_why(settled: SearchView) -> None:
    h3, h4, h5 = (_hash(settled, n) for n in (3, 4, 5))
    lines = round_lines(settled.search, settled.cells[0])
    assert lines[0] == f"round 0: racing {h4}, {h3}, {h5} (best search value first)"
    assert lines[1].startswith(f"round 1 (3 runs): leader {h4}; undecided ")
    assert lines[2] == (
        f"round 2 (6 runs): leader {h4}; eliminated {h5} (worse than {h4} by more than 5% "
        f"(one-sided 95 % confidence)); within the margin {h3}; ended: settled"
    )


def test_an_undecided_candidate_says_about_how_many_more_runs_would_settle_it(
    undecided: SearchView,
) -> None:
    cell = undecided.cells[0]
    assert cell.verdict.kind == "no_clear_winner"
    [standing] = cell.verdict.undecided
    assert standing.runs_to_settle is not None and standing.runs_to_settle > 2
    rows = _by_prompts(race_rows(undecided.search, cell))
    more = standing.runs_to_settle - 2  # two runs each so far
    assert rows[standing.candidate.params["n_prompts"]].status == (
        f"undecided: about {more} more runs each ({standing.runs_to_settle} in all) would settle it"
    )
    assert round_lines(undecided.search, cell)[-1].endswith(
        "ended: budget: 4 of confirm.max_runs 4 spent"
    )


def test_runs_spent_are_those_the_manifest_records(settled_dir: Path, settled: SearchView) -> None:
    manifest = (settled_dir / "manifest.jsonl").read_text()
    lines = [json.loads(line) for line in manifest.splitlines()]
    trials = sum(1 for e in lines if e["kind"] == "trial" and e["run_id"] and not e["reused"])
    confirms = [e for e in lines if e["kind"] == "confirm"]
    remeasured = sum(1 for e in confirms if e["purpose"] == "remeasure")
    raced_runs = sum(1 for e in confirms if e["purpose"] == "race")
    total = trials + remeasured + raced_runs
    assert runs_spent(settled.search, settled.cells[0]).startswith(
        f"{total} runs: {trials} search, {remeasured} re-measurement, {raced_runs} confirmation "
        "(grid: 6 configurations); cost: "
    )


def _trial(number: int, run_id: str | None, state: str = "complete") -> TrialView:
    return TrialView(0, number, {"x": number}, state, run_id, "h", [1.0], [], None)  # type: ignore[arg-type]


def _confirmed(planned: int) -> Confirmed:
    summary = Summary(n=planned, mean=1.0, std=0.0, ci_low=1.0, ci_high=1.0, cv_pct=0.0)
    return Confirmed("h" * 64, {}, planned, planned, [summary], [], True, None)


def test_runs_spent_count_each_purpose_and_the_grid_only_where_it_is_finite() -> None:
    cell = CellView(
        0,
        {},
        trials=[_trial(0, "r0"), _trial(1, "r0", "skipped-duplicate"), _trial(2, None)],
        confirmed=[_confirmed(3), _confirmed(2)],
        remeasured=2,
    )
    finite = SearchConfig.model_validate(
        {"objective": {"minimize": "energy.j_per_output_token"}, "space": {"x": [1, 2, 3]}}
    )
    assert runs_spent(finite, cell) == (
        "8 runs: 1 search, 2 re-measurement, 5 confirmation (grid: 3 configurations)"
    )
    continuous = SearchConfig.model_validate(
        {
            "objective": {"minimize": "energy.j_per_output_token"},
            "space": {"x": {"low": 0.1, "high": 1.0}},
        }
    )
    assert runs_spent(continuous, cell).endswith("5 confirmation")


def test_several_objectives_show_the_front_of_the_candidates_left(trade_off: SearchView) -> None:
    cell = trade_off.cells[0]
    h2, h3, h4 = (_hash(trade_off, n) for n in (2, 3, 4))
    assert front_lines(trade_off.search, cell) == [
        f"front: {h4} (n_prompts=4), with {h3} within the margin",
        f"front: {h2} (n_prompts=2) (a trade-off with the leader)",
    ]
    rows = _by_prompts(race_rows(trade_off.search, cell))
    assert rows[3].status == "not told apart from the leader by more than 5%"
    assert rows[2].status == (
        "on the front: better than the leader on throughput.output_tokens_per_s"
    )
    assert [d.relation for d in rows[2].differences or []] == ["worse", "better"]
    assert "settled" in round_lines(trade_off.search, cell)[-1]


def test_a_single_objective_has_no_front_line(settled: SearchView) -> None:
    assert front_lines(settled.search, settled.cells[0]) == []


def test_a_difference_is_shown_with_its_interval_or_why_it_has_none() -> None:
    assert difference_text(Difference(0.042, 0.0239, 0.0606, "undecided")) == (
        "+4.2% [+2.4%, +6.1%]"
    )
    assert difference_text(Difference(-0.1, -math.inf, math.inf, "undecided")) == (
        "-10.0% (no CI yet: two runs a side needed)"
    )
