"""The wall-time estimate and the derived experiment timeout."""

from __future__ import annotations

import math

from llenergymeasure.config.study import (
    TIMEOUT_ESTIMATE_FACTOR,
    TIMEOUT_SLACK_S,
    ExecutionConfig,
    StudyConfig,
)
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.study import estimate_run, estimate_wall_time, expand
from llenergymeasure.study.run_duration import DECODE_STEP_GUESS_S


def test_run_estimate_phases() -> None:
    config = ExperimentConfig.model_validate(
        {
            "model": "m",
            "n_prompts": 8,
            "max_new_tokens": 10,
            "min_window_s": 0,
            "pytorch": {"batch_size": 4},
            "baseline": {"duration_s": 7},
            "warmup": {"min_batches": 2},
        }
    )
    estimate = estimate_run(config)
    batch_s = 10 * DECODE_STEP_GUESS_S["gpu"]
    assert estimate.startup_s == spec_of("pytorch").startup_guess_s
    assert estimate.baseline_s == 7
    assert math.isclose(estimate.warmup_s, 2 * batch_s)
    assert math.isclose(estimate.measured_s, 2 * batch_s)  # 8 prompts / batch 4
    assert math.isclose(estimate.total_s, 45 + 7 + 4 * batch_s)


def test_a_thermal_warmup_counts_at_its_cap_on_a_gpu() -> None:
    thermal = {"warmup": {"min_batches": 2, "thermal_max_s": 60}}
    on_gpu = estimate_run(ExperimentConfig.model_validate({"model": "m", **thermal}))
    plain = estimate_run(ExperimentConfig(model="m", warmup={"min_batches": 2}))
    assert math.isclose(on_gpu.warmup_s, plain.warmup_s + 60)


def test_measured_window_is_at_least_min_window() -> None:
    config = ExperimentConfig(model="m", n_prompts=1, max_new_tokens=1, min_window_s=30)
    assert estimate_run(config).measured_s >= 30


def test_study_estimate_sums_runs_and_gaps() -> None:
    execution = ExecutionConfig(n_cycles=2, gap_between_experiments_s=10, gap_between_cycles_s=100)
    study = StudyConfig(
        name="t", defaults={"model": "m"}, sweep={"n_prompts": [1, 2]}, execution=execution
    )
    plan = expand(study)
    total = estimate_wall_time(plan, execution)
    per_run = sum(estimate_run(plan.configs[r.config_index].config).total_s for r in plan.runs)
    assert total.n_runs == 4
    assert total.gaps_s == 10 + 100 + 10
    assert math.isclose(total.total_s, per_run + 120)
    assert total.as_dict()["total_s"] == total.total_s


def test_timeout_explicit_or_derived() -> None:
    assert ExecutionConfig(experiment_timeout_s=42).timeout_for(1000) == 42
    derived = ExecutionConfig().timeout_for(100)
    assert derived == math.ceil(TIMEOUT_ESTIMATE_FACTOR * 100 + TIMEOUT_SLACK_S)


def test_a_reused_baseline_is_counted_once_per_slot_within_reuse_s() -> None:
    """baseline.reuse_s: a run within reuse_s of its slot's last measured baseline spends
    none; a longer gap, or no reuse_s, measures again."""

    def total_baseline(reuse_s: float | None, gap_s: float, max_parallel: int = 1) -> float:
        execution = ExecutionConfig(gap_between_experiments_s=gap_s, max_parallel=max_parallel)
        baseline = {"duration_s": 30, "reuse_s": reuse_s}
        study = StudyConfig(
            name="t",
            defaults={"model": "m", "baseline": baseline},
            sweep={"n_prompts": [1, 2, 3, 4]},
            execution=execution,
        )
        return estimate_wall_time(expand(study), execution).baseline_s

    assert total_baseline(None, 0) == 4 * 30
    assert total_baseline(3600, 0) == 30  # the first measures, the others reuse it
    assert total_baseline(3600, 0, max_parallel=2) == 2 * 30  # one per slot
    assert total_baseline(10, 60) == 4 * 30  # each gap outlasts reuse_s
