"""The `search:` grammar: its shapes, and each mistake as one message at its line (exit 2)."""

from __future__ import annotations

import json
import textwrap

import pytest
from pydantic import ValidationError

from helpers.cli import plan_quickly, run_llem
from llenergymeasure.config.search import Constraint, Range, SearchConfig

SEARCH = """\
name: s
model: stub:m
sweep:
  max_new_tokens: [8, 16]
search:
  objective: {minimize: throughput.output_tokens_per_s}
  constraints: ["latency.ttft_ms.p50 <= 200"]
  space:
    n_prompts: {low: 1, high: 32, log: true}
    decoding.temperature: {low: 0.1, high: 1.0}
    precision: [fp32, bf16]
  trials: 12
"""


def test_a_constraint_is_one_string_and_knows_its_violation() -> None:
    below = Constraint.model_validate("latency.ttft_ms.p99 <= 200")
    assert (below.metric, below.op, below.bound) == ("latency.ttft_ms.p99", "<=", 200.0)
    assert below.met_by(200) and below.violation(150) <= 0
    assert below.violation(300) == pytest.approx(0.5)  # relative to the bound
    above = Constraint.model_validate("serving.goodput_fraction >= 0.99")
    assert not above.met_by(0.5) and above.violation(0.5) > 0
    strict = Constraint.model_validate("latency.itl_ms.p50 < 10")
    assert strict.violation(10) > 0  # on the bound: not met
    for bad in ("latency <= ", "ttft_ms.p99 == 3", "x <= fast", "<= 3"):
        with pytest.raises(ValidationError):
            Constraint.model_validate(bad)


def test_ranges_integer_or_real_log_or_stepped() -> None:
    assert Range(low=8, high=512, log=True).integer
    assert not Range(low=0.7, high=0.95).integer
    assert Range(low=1, high=9, step=4).grid() == [1, 5, 9]
    assert Range(low=0.5, high=1.0, step=0.25).grid() == [0.5, 0.75, 1.0]
    assert Range(low=0.5, high=1.0).grid() is None
    for bad in (
        {"low": 5, "high": 1},
        {"low": 0, "high": 4, "log": True},
        {"low": 1, "high": 8, "log": True, "step": 2},
    ):
        with pytest.raises(ValidationError):
            Range.model_validate(bad)


def test_the_space_is_flattened_like_a_sweep_but_a_range_is_a_value() -> None:
    search = SearchConfig.model_validate(
        {
            "objective": {"maximize": "throughput.output_tokens_per_s"},
            "space": {"pytorch": {"batch_size": {"low": 1, "high": 8}}, "precision": ["fp16"]},
        }
    )
    assert set(search.space) == {"pytorch.batch_size", "precision"}
    assert isinstance(search.space["pytorch.batch_size"], Range)
    assert search.space_size() == 8
    assert search.goals[0].direction == "maximize"


@pytest.mark.parametrize(
    "search, fragment",
    [
        ({"space": {"n_prompts": [1]}}, "one `objective:`"),
        (
            {"objective": {"minimize": "a", "maximize": "b"}, "space": {"n_prompts": [1]}},
            "objective is",
        ),
        (
            {
                "objectives": [{"minimize": "a"}, {"minimize": "b"}],
                "patience": 3,
                "space": {"n_prompts": [1]},
            },
            "patience watches one objective",
        ),
        (
            {
                "objective": {"minimize": "a"},
                "sampler": "grid",
                "space": {"decoding.temperature": {"low": 0.1, "high": 1.0}},
            },
            "sampler grid needs values it can list",
        ),
        (
            {"objective": {"minimize": "a"}, "space": {"prompts": [{"source": "x"}]}},
            "numbers, strings",
        ),
        ({"objective": {"minimize": "a"}, "space": {"n_prompts": [1, 1]}}, "listed twice"),
        ({"objective": {"minimize": "a"}, "space": {}}, "at least 1"),
    ],
)
def test_inconsistent_searches_are_refused(search: dict, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SearchConfig.model_validate(search)
    assert fragment in str(caught.value)


def test_a_valid_search_plans_its_cells_and_its_most_runs(tmp_path) -> None:
    (tmp_path / "study.yaml").write_text(SEARCH)
    code, out, err = run_llem("plan", str(tmp_path / "study.yaml"))
    assert code == 0, err
    assert "Search cells" in out and "minimize throughput.output_tokens_per_s" in out
    assert "n_prompts: integers 1..32 (log scale)" in out
    # two cells (the sweep's) x (12 trials + at most 12 re-measurements + a race of 15)
    assert "at most 78 runs" in out


@pytest.mark.parametrize(
    "change, line, fragments",
    [
        (
            ("n_prompts: {low", "n_promts: {low"),
            9,
            ["search.space.n_promts", "did you mean 'n_prompts'"],
        ),
        (
            ("precision: [fp32, bf16]", "max_new_tokens: [8]"),
            11,
            ["search.space.max_new_tokens", "also swept by sweep.max_new_tokens", "study.yaml:4)"],
        ),
        (
            ("{low: 1, high: 32, log: true}", "{low: 32, high: 1}"),
            9,
            ["low (32) is above high (1)"],
        ),
        (
            ("{low: 1, high: 32, log: true}", "{low: 0, high: 32}"),
            9,
            ["search.space.n_prompts", "value 0", "greater than 0"],
        ),
        (
            ("throughput.output_tokens_per_s}", "throughput.tokens_per_hour}"),
            5,
            ["unknown metric 'throughput.tokens_per_hour'"],
        ),
        (
            ('"latency.ttft_ms.p50 <= 200"', '"latency.ttft_ms.p50 is small"'),
            7,
            ["search.constraints[0]", "not a constraint"],
        ),
        (("  trials: 12", "  trials: 12\n  samplr: tpe"), 13, ["search.samplr"]),
    ],
)
def test_each_mistake_is_one_message_at_its_line(tmp_path, change, line, fragments) -> None:
    code, err = plan_quickly(tmp_path, SEARCH.replace(*change))
    assert code == 2, err
    assert f"study.yaml:{line}" in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert "Traceback" not in err


def test_cycles_do_not_apply_to_a_search(tmp_path) -> None:
    text = SEARCH + textwrap.dedent("""\
        execution:
          n_cycles: 3
        """)
    code, err = plan_quickly(tmp_path, text)
    assert code == 2 and "study.yaml:14" in err and "search.confirm" in err


def test_the_example_search_plans_with_its_most_runs() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "examples" / "search-serving-slo.yaml"
    code, out, err = run_llem("plan", str(example), "--json")
    assert code == 0, err
    search = json.loads(out)["search"]
    assert search["cells"] == 1 and search["max_runs"] == 2 * 40 + 15
    assert search["constraints"][0] == {"metric": "latency.ttft_ms.p99", "op": "<=", "bound": 200.0}


def test_a_search_that_may_run_more_than_a_study_holds_is_refused(tmp_path) -> None:
    text = SEARCH.replace("max_new_tokens: [8, 16]", "max_new_tokens: [8, 16, 24, 32]").replace(
        "trials: 12", "trials: 30000"
    )
    code, err = plan_quickly(tmp_path, text)
    assert code == 2 and "study.yaml:12" in err and "above the 100,000" in err
