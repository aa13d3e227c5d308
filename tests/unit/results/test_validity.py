"""The one rule on a run's GPU energy: valid, not valid (with its codes), or no verdict (no
reading, or a result from before validity); a result and its flattened row judged alike."""

from __future__ import annotations

import pytest

from helpers.factories import run_context
from helpers.results import NO_ENERGY, Figures, make_result, pytorch_config
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.validity import Validity, ValidityReason
from llenergymeasure.results.flatten import metric_columns
from llenergymeasure.results.validity import (
    GpuEnergyValidity,
    gpu_energy_validity,
    row_validity,
    verdict,
)


def result(**figures) -> ExperimentResult:
    return make_result(run_context(), pytorch_config(1), Figures(tokens_per_s=100.0, **figures))


@pytest.mark.parametrize(
    ("measured", "codes", "expected"),
    [
        (True, [], "valid"),
        (True, ["throttled"], "not_valid"),
        (True, ["counter_reset", "sample_gap"], "not_valid"),
        (False, ["energy_unavailable"], "no_verdict"),  # a CPU run
        (True, ["not_judged"], "no_verdict"),  # a result from before validity
        (True, ["not_judged", "foreign_processes"], "not_valid"),  # the host saw a fault
        (False, ["energy_unavailable", "foreign_processes"], "no_verdict"),  # nothing to refuse
        (False, ["not_judged"], "no_verdict"),
        (False, [], "no_verdict"),
    ],
)
def test_the_rule(measured: bool, codes: list[str], expected: str) -> None:
    assert verdict(measured, codes) == expected


def judged_both_ways(r: ExperimentResult) -> GpuEnergyValidity:
    """The result's verdict, asserted equal to its flattened row's."""
    from_result = gpu_energy_validity(r.energy)
    assert row_validity(metric_columns(r)) == from_result
    return from_result


def test_a_valid_reading() -> None:
    judged = judged_both_ways(result(j_per_token=0.5))
    assert (judged.verdict, judged.measured, judged.codes, judged.detail) == (
        "valid",
        True,
        (),
        "",
    )
    assert not judged.not_valid


def test_a_reading_judged_not_valid_keeps_every_reason() -> None:
    judged = judged_both_ways(result(j_per_token=0.5, invalid=("throttled", "sample_gap")))
    assert judged.not_valid and judged.measured
    assert judged.codes == ("throttled", "sample_gap")
    assert judged.detail == "throttled: synthetic; sample_gap: synthetic"


def test_no_reading_has_no_verdict() -> None:
    judged = judged_both_ways(result(j_per_token=None))
    assert (judged.verdict, judged.measured) == ("no_verdict", False)
    assert judged.detail == f"energy_unavailable: {NO_ENERGY}"


def with_validity(r: ExperimentResult, validity: Validity) -> ExperimentResult:
    return r.model_copy(update={"energy": r.energy.model_copy(update={"validity": validity})})


def test_a_result_from_before_validity_has_a_reading_and_no_verdict() -> None:
    judged = judged_both_ways(with_validity(result(j_per_token=0.5), Validity.not_judged()))
    assert (judged.verdict, judged.measured, judged.codes) == ("no_verdict", True, ("not_judged",))


def test_a_host_finding_on_a_cpu_run_refuses_nothing() -> None:
    """The host adds `foreign_processes` to the GPU validity; without a reading there is no
    figure it could spoil."""
    r = result(j_per_token=None).with_host_warning("foreign_gpu_processes", "pid 7 on GPU 0")
    judged = judged_both_ways(r)
    assert judged.verdict == "no_verdict"
    assert judged.codes == ("energy_unavailable", "foreign_processes")


def test_a_row_of_a_run_without_a_result_has_no_verdict() -> None:
    assert row_validity({"outcome": "failed"}).verdict == "no_verdict"


def test_detail_is_what_the_reasons_say() -> None:
    reasons = [ValidityReason(code="window_short", detail="4 s (window < 10 s)")]
    r = with_validity(result(j_per_token=0.5), Validity.of(reasons))
    assert judged_both_ways(r).detail == "window_short: 4 s (window < 10 s)"
