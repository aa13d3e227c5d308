"""Wall-time estimate of a study, before anything has run: guesses, stated as such.

Per run: container start + model load (a per-backend guess), the idle baseline (configured),
warmup (min_batches batches, plus thermal_max_s on a GPU), and the measured window (the prompt
set at a guessed per-sequence decode rate, repeated until min_window_s). Plus the configured
gaps between runs. With
`max_parallel` N the sum is divided by N, as if every slot were always busy. A first model
download and a TensorRT engine build on first use are not included: they depend on the network
and the model, which the plan cannot know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.study.expand import Plan
from llenergymeasure.study.order import gap_between

# Guessed time of one decode step of a batch, s (~30 tokens/s per sequence on a GPU).
DECODE_STEP_GUESS_S = {"gpu": 0.033, "cpu": 0.25}


def _concurrency(config: ExperimentConfig) -> int:
    """Sequences decoded together: the batch size, or the engine's cap on running sequences."""
    cap = getattr(config.backend_section, spec_of(config.backend).concurrency_key)
    return max(1, min(cap, config.n_prompts))


@dataclass(frozen=True)
class RunEstimate:
    """Guessed duration of one run, by phase, s."""

    startup_s: float
    baseline_s: float
    warmup_s: float
    measured_s: float

    @property
    def total_s(self) -> float:
        return self.startup_s + self.baseline_s + self.warmup_s + self.measured_s


def estimate_run(config: ExperimentConfig) -> RunEstimate:
    """Guessed duration of one run of `config` (see the module docstring for the method)."""
    step_s = DECODE_STEP_GUESS_S["gpu" if config.gpu_count > 0 else "cpu"]
    batch_s = config.max_new_tokens * step_s
    batches = math.ceil(config.n_prompts / _concurrency(config))
    pass_s = batches * batch_s
    passes = max(1, math.ceil(config.min_window_s / pass_s)) if pass_s > 0 else 1
    warmup = config.warmup.min_batches * batch_s if config.warmup.enabled else 0.0
    if config.warmup.enabled and config.gpu_count > 0:
        warmup += config.warmup.thermal_max_s  # at most; a GPU that settles sooner stops sooner
    baseline = config.baseline.duration_s if config.baseline.enabled else 0.0
    return RunEstimate(
        startup_s=spec_of(config.backend).startup_guess_s,
        baseline_s=baseline,
        warmup_s=warmup,
        measured_s=passes * pass_s,
    )


@dataclass(frozen=True)
class WallTimeEstimate:
    """Guessed wall time of a whole study, by phase, s (summed over runs)."""

    n_runs: int
    startup_s: float
    baseline_s: float
    warmup_s: float
    measured_s: float
    gaps_s: float
    parallel: int = 1  # runs at once (max_parallel): the wall time is the sum over this

    @property
    def total_s(self) -> float:
        busy = self.startup_s + self.baseline_s + self.warmup_s + self.measured_s + self.gaps_s
        return busy / self.parallel

    def scaled(self, factor: float) -> WallTimeEstimate:
        """The same runs `factor` times over (a search: its cells' runs to its most runs)."""
        return WallTimeEstimate(
            n_runs=round(self.n_runs * factor),
            startup_s=self.startup_s * factor,
            baseline_s=self.baseline_s * factor,
            warmup_s=self.warmup_s * factor,
            measured_s=self.measured_s * factor,
            gaps_s=self.gaps_s * factor,
            parallel=self.parallel,
        )

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "n_runs": self.n_runs,
            "startup_s": self.startup_s,
            "baseline_s": self.baseline_s,
            "warmup_s": self.warmup_s,
            "measured_s": self.measured_s,
            "gaps_s": self.gaps_s,
            "parallel": self.parallel,
            "total_s": self.total_s,
            "method": "guess: per-backend start/load + configured baseline + guessed decode "
            "rate + configured gaps, summed over runs, over max_parallel; excludes model "
            "downloads and engine builds",
        }


def estimate_wall_time(plan: Plan, execution: ExecutionConfig) -> WallTimeEstimate:
    """Sum of `estimate_run` over the plan's runs plus the gaps `gap_before` puts between them."""
    per_config = [estimate_run(planned.config) for planned in plan.configs]
    startup = baseline = warmup = measured = gaps = 0.0
    previous: int | None = None
    for config_index, cycle in plan.order:
        estimate = per_config[config_index]
        startup += estimate.startup_s
        baseline += estimate.baseline_s
        warmup += estimate.warmup_s
        measured += estimate.measured_s
        gaps += gap_between(previous, cycle, execution)
        previous = cycle
    parallel = min(execution.max_parallel, max(plan.n_runs, 1))
    return WallTimeEstimate(plan.n_runs, startup, baseline, warmup, measured, gaps, parallel)
