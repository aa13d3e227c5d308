"""A trial's judgement against the search, and the confirmation's verdict."""

from __future__ import annotations

from helpers.factories import run_context
from helpers.results import Figures, make_result, pytorch_config
from llenergymeasure.config.search import Objective, SearchConfig
from llenergymeasure.results.search import UNMEASURED_VIOLATION, dominates, judge

SEARCH = SearchConfig.model_validate(
    {
        "objective": {"minimize": "energy.j_per_output_token"},
        "constraints": ["throughput.output_tokens_per_s >= 100", "latency.ttft_ms.p50 <= 50"],
        "space": {"n_prompts": [1, 2]},
    }
)


def result(**figures):
    return make_result(run_context(), pytorch_config(1), Figures(**figures))


def test_a_result_meeting_every_constraint_is_feasible() -> None:
    judgement = judge(SEARCH, result(tokens_per_s=150, j_per_token=0.2, ttft_p50_ms=20))
    assert judgement.feasible and judgement.reason is None
    assert judgement.values == [0.2] and judgement.constraint_values == [150, 20]
    assert all(v <= 0 for v in judgement.violations)


def test_a_missed_constraint_names_its_reading() -> None:
    judgement = judge(SEARCH, result(tokens_per_s=80, j_per_token=0.2, ttft_p50_ms=60))
    assert not judgement.feasible
    assert "throughput.output_tokens_per_s = 80, not >= 100" in judgement.reason
    assert "latency.ttft_ms.p50 = 60, not <= 50" in judgement.reason
    assert judgement.violations[1] > 0 and judgement.violations[2] > 0
    assert judgement.values == [0.2]  # the objective is still told as measured


def test_an_objective_that_was_not_measured_says_why() -> None:
    judgement = judge(SEARCH, result(tokens_per_s=150, j_per_token=None))
    assert not judgement.feasible and judgement.values == [None]
    assert "energy.j_per_output_token not measured: no NVIDIA GPU" in judgement.reason
    assert judgement.told_values() == [0.0] and judgement.violations[0] > 0


def test_an_energy_reading_that_is_not_valid_is_not_used() -> None:
    """A search would seek out a throttled or shared GPU's reading if it looked cheap."""
    judgement = judge(
        SEARCH,
        result(tokens_per_s=150, j_per_token=0.01, invalid=("foreign_processes", "throttled")),
    )
    assert not judgement.feasible and judgement.values == [None]
    assert judgement.constraint_values == [150, 20]  # speed and latency are still readings
    assert judgement.reason is not None
    assert judgement.reason.startswith("energy.j_per_output_token not used: GPU energy not valid")
    assert "foreign_processes: synthetic" in judgement.reason and "throttled" in judgement.reason
    assert judgement.violations[0] > 0 and judgement.energy_not_valid


def test_energy_without_a_verdict_is_not_refused() -> None:
    """No reading (the objective is then not measured, with its own reason) or a result from
    before validity: the search has no verdict to refuse it by."""
    cpu = judge(SEARCH, result(tokens_per_s=150, j_per_token=None))
    assert not cpu.energy_not_valid and "not measured: no NVIDIA GPU" in (cpu.reason or "")
    old = result(tokens_per_s=150, j_per_token=0.2, invalid=("not_judged",))
    judgement = judge(SEARCH, old)
    assert judgement.feasible and judgement.values == [0.2]


def test_a_search_on_speed_alone_does_not_read_energy_validity() -> None:
    speed = SearchConfig.model_validate(
        {
            "objective": {"maximize": "throughput.output_tokens_per_s"},
            "space": {"n_prompts": [1, 2]},
        }
    )
    judgement = judge(speed, result(tokens_per_s=150, j_per_token=0.2, invalid=("throttled",)))
    assert judgement.feasible and judgement.values == [150]


def test_no_steady_state_fails_the_constraints() -> None:
    judgement = judge(
        SEARCH,
        result(tokens_per_s=150, j_per_token=0.2, warnings=("steady_state_not_reached",)),
    )
    assert not judgement.feasible and "steady_state_not_reached" in judgement.reason


def test_a_run_without_a_result_is_infeasible_beyond_any_constraint() -> None:
    judgement = judge(SEARCH, None, "killed_oom: out of memory")
    assert judgement.failed and not judgement.feasible
    assert judgement.violations[0] == UNMEASURED_VIOLATION
    assert judgement.reason == "killed_oom: out of memory"


def test_dominance_over_several_objectives() -> None:
    goals = [Objective(minimize="a"), Objective(maximize="b")]
    assert dominates(goals, [1.0, 5.0], [2.0, 4.0])
    assert not dominates(goals, [1.0, 3.0], [2.0, 4.0])  # a trade-off: neither dominates
    assert not dominates(goals, [1.0, 5.0], [1.0, 5.0])  # equal: not strictly better
    assert not dominates(goals, [None, 5.0], [2.0, 4.0])
