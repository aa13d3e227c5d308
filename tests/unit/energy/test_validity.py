"""The validity rules on synthesised evidence: each fires past its threshold and not before."""

from __future__ import annotations

from dataclasses import replace

import pytest

from helpers.factories import run_context
from helpers.results import Figures, make_result, pytorch_config
from llenergymeasure.contract.validity import RULES
from llenergymeasure.energy.validity import (
    GpuEvidence,
    GpuWindow,
    cpu_validity,
    gpu_validity,
    largest_gap_s,
)

STEADY = GpuWindow(
    mean_power_w=300.0, idle_power_w=80.0, power_limit_w=700.0, temperatures_c=[50.0] * 8
)
CLEAN = GpuEvidence(
    energy_reason=None,
    integral_only=False,
    counter_reset=False,
    window_s=30.0,
    counter_update_s=0.1,
    largest_gap_s=0.11,
    sample_interval_s=0.1,
    counter_integral_ratio=1.01,
    gpus=[STEADY],
)


def codes(evidence: GpuEvidence) -> list[str]:
    return [r.code for r in gpu_validity(evidence).reasons]


def test_a_clean_window_is_valid() -> None:
    validity = gpu_validity(CLEAN)
    assert validity.valid and validity.reasons == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"largest_gap_s": 0.31}, "sample_gap"),  # > 3 x 100 ms
        ({"largest_gap_s": 1.2, "sample_interval_s": 1.0}, "sample_gap"),  # > 1 s
        ({"counter_integral_ratio": 1.06}, "counter_integral_mismatch"),
        ({"counter_integral_ratio": 0.94}, "counter_integral_mismatch"),
        ({"window_s": 9.9}, "window_short"),
        ({"window_s": 11.0, "counter_update_s": 6.0}, "window_short"),  # < two updates
        ({"throttles": ["hw_thermal_slowdown"]}, "throttled"),
        ({"throttles": ["sw_power_cap", "hw_power_brake_slowdown"]}, "throttled"),
        ({"other_processes": 1}, "foreign_processes"),
        ({"identity_mismatch": "metered GPU-1, granted GPU-0"}, "gpu_identity"),
        ({"integral_only": True}, "integral_only"),
        ({"counter_reset": True}, "counter_reset"),
        ({"gpus": [replace(STEADY, mean_power_w=70.0)]}, "power_out_of_range"),  # < 0.9 x 80
        ({"gpus": [replace(STEADY, mean_power_w=736.0)]}, "power_out_of_range"),  # > 1.05 x 700
        (
            {"gpus": [replace(STEADY, temperatures_c=[50, 50, 50, 50, 51, 52, 54, 55])]},
            "temperature_drift",
        ),
        ({"gpus": [replace(STEADY, mig=True)]}, "mig_slice"),
    ],
)
def test_each_rule_fires_past_its_threshold(change: dict, code: str) -> None:
    evidence = replace(CLEAN, **change)
    validity = gpu_validity(evidence)
    assert not validity.valid
    assert codes(evidence) == [code]
    assert RULES[code].threshold in validity.reasons[0].detail  # type: ignore[index]


@pytest.mark.parametrize(
    "change",
    [
        {"largest_gap_s": 0.29},
        {"counter_integral_ratio": 1.049},
        {"window_s": 10.0},
        {"gpus": [replace(STEADY, mean_power_w=73.0)]},  # >= 0.9 x 80
        {"gpus": [replace(STEADY, mean_power_w=712.0)]},  # held at its 700 W limit
        {"gpus": [replace(STEADY, temperatures_c=[40, 45, 50, 52, 52, 53, 54, 55])]},  # early rise
        {"largest_gap_s": None, "counter_integral_ratio": None},  # nothing to judge by
        {"throttles": ["sw_power_cap"]},  # at the run's power limit: recorded, not a fault
    ],
)
def test_within_the_thresholds_nothing_fires(change: dict) -> None:
    assert gpu_validity(replace(CLEAN, **change)).valid


def test_no_energy_is_one_reason_saying_why() -> None:
    validity = gpu_validity(replace(CLEAN, energy_reason="gpu_count is 0", throttles=["x"]))
    assert [(r.code, r.detail) for r in validity.reasons] == [
        ("energy_unavailable", "gpu_count is 0")
    ]


def test_several_reasons_are_all_kept() -> None:
    assert codes(replace(CLEAN, window_s=2.0, counter_integral_ratio=1.2)) == [
        "window_short",
        "counter_integral_mismatch",
    ]


def test_cpu_figures() -> None:
    assert cpu_validity(None, 30.0).valid
    assert [r.code for r in cpu_validity(None, 3.0).reasons] == ["window_short"]
    shared = make_result(run_context(), pytorch_config(1), Figures(100.0, 0.5))
    shared = shared.with_host_shared(["0001_other_c0", "0002_other_c0"])
    assert [r.code for r in shared.energy.cpu_validity.reasons] == ["host_shared"]
    assert [r.code for r in cpu_validity("no RAPL", 30.0).reasons] == ["energy_unavailable"]


def test_largest_gap_spans_the_edges() -> None:
    times = [0.0, 0.1, 0.2, 0.7, 0.8, 0.9]
    assert largest_gap_s(times, 0.15, 0.85) == pytest.approx(0.5)
    assert largest_gap_s(times, 0.75, 0.85) == pytest.approx(0.1)
    # no sample at or before the start: the samples do not span the window
    assert largest_gap_s(times, -0.1, 0.5) is None
    assert largest_gap_s(times, 0.5, 1.0) is None


def test_every_code_has_a_rule() -> None:
    from typing import get_args

    from llenergymeasure.contract.validity import ValidityCode

    assert set(get_args(ValidityCode)) == set(RULES)


def test_the_readme_table_names_every_code() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("### How far to trust a figure", 1)[1].split("\n## ", 1)[0]
    missing = [code for code in RULES if f"| `{code}` |" not in section]
    assert not missing, f"README's validity table lacks {missing}"


def test_a_floor_from_a_reused_baseline_says_whose_it_is() -> None:
    low = replace(CLEAN, gpus=[replace(STEADY, mean_power_w=70.0)])
    reused = replace(low, idle_reused_from="reused from run 3_ab_c0, 40 s old")
    (own,) = gpu_validity(low).reasons
    (theirs,) = gpu_validity(reused).reasons
    assert "reused" not in own.detail
    assert "idle baseline reused from run 3_ab_c0, 40 s old" in theirs.detail
