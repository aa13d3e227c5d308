"""Wall-time estimate of a study, before anything has run: guesses, stated as such.

Per run: its expected duration by phase (`run_duration.estimate_run`, the one model for offline
and serving runs, which each run's derived timeout reads too). Plus the configured gaps between
runs. With `max_parallel` N the sum is divided by N, as if every slot were always busy. A search
counts its most runs (every cell's trials and confirmation runs) at its cells' runs' mean.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from llenergymeasure.config.study import ExecutionConfig, StudyConfig
from llenergymeasure.study.expand import Plan
from llenergymeasure.study.order import gap_between
from llenergymeasure.study.run_duration import RunEstimate, estimate_run
from llenergymeasure.study.search_space import most_runs


@dataclass(frozen=True)
class WallTimeEstimate:
    """Guessed wall time of a whole study, by phase, s (summed over runs)."""

    n_runs: int
    startup_s: float
    baseline_s: float
    warmup_s: float
    measured_s: float
    drain_s: float  # serving runs: from the last send to the last answer
    gaps_s: float
    parallel: int = 1  # runs at once (max_parallel): the wall time is the sum over this
    not_included: tuple[str, ...] = ()  # what some run's estimate could not count
    per_config: tuple[RunEstimate, ...] = ()  # each configuration's run, by config index

    @property
    def total_s(self) -> float:
        busy = (
            self.startup_s
            + self.baseline_s
            + self.warmup_s
            + self.measured_s
            + self.drain_s
            + self.gaps_s
        )
        return busy / self.parallel

    def scaled(self, factor: float) -> WallTimeEstimate:
        """The same runs `factor` times over (a search: its cells' runs to its most runs)."""
        return dataclasses.replace(
            self,
            n_runs=round(self.n_runs * factor),
            startup_s=self.startup_s * factor,
            baseline_s=self.baseline_s * factor,
            warmup_s=self.warmup_s * factor,
            measured_s=self.measured_s * factor,
            drain_s=self.drain_s * factor,
            gaps_s=self.gaps_s * factor,
        )

    def as_dict(self) -> dict[str, float | int | str | list[str]]:
        return {
            "n_runs": self.n_runs,
            "startup_s": self.startup_s,
            "baseline_s": self.baseline_s,
            "warmup_s": self.warmup_s,
            "measured_s": self.measured_s,
            "drain_s": self.drain_s,
            "gaps_s": self.gaps_s,
            "parallel": self.parallel,
            "total_s": self.total_s,
            "not_included": list(self.not_included),
            "method": "guess: each run's expected duration (offline: per-backend start/load, "
            "configured baseline (none where baseline.reuse_s lets it reuse its slot's last), "
            "warm-up and window at a guessed decode rate; serving: "
            "per-backend server start, configured baseline, requests / rate and the drain, "
            "summed over stages, find_max_rate at its most probes) + configured gaps, summed "
            "over runs, over max_parallel; excludes model downloads and engine builds",
        }


def estimate_wall_time(plan: Plan, execution: ExecutionConfig) -> WallTimeEstimate:
    """Sum of `estimate_run` over the plan's runs plus the gaps `gap_before` puts between them.
    A run with `baseline.reuse_s` counts no baseline where the last baseline measured on its
    slot (runs taken in turn over max_parallel slots) ended within reuse_s before it starts:
    the host offers it, and the estimate assumes the GPU cool enough to take it."""
    per_config = tuple(estimate_run(planned.config) for planned in plan.configs)
    startup = baseline = warmup = measured = drain = gaps = 0.0
    previous: int | None = None
    parallel = min(execution.max_parallel, max(plan.n_runs, 1))
    since_baseline: list[float | None] = [None] * parallel  # per slot, s
    for position, (config_index, cycle) in enumerate(plan.order):
        estimate = per_config[config_index]
        gap = gap_between(previous, cycle, execution)
        slot = position % parallel
        since = since_baseline[slot]
        reuse_s = plan.configs[config_index].config.baseline.reuse_s
        if since is not None and reuse_s is not None and since + gap <= reuse_s:
            run_s = estimate.total_s - estimate.baseline_s
            since_baseline[slot] = since + gap + run_s
        else:
            baseline += estimate.baseline_s
            run_s = estimate.total_s
            since_baseline[slot] = run_s - estimate.startup_s - estimate.baseline_s
        startup += estimate.startup_s
        warmup += estimate.warmup_s
        measured += estimate.measured_s
        drain += estimate.drain_s
        gaps += gap
        previous = cycle
    unknown = tuple(dict.fromkeys(e.unknown for e in per_config if e.unknown is not None))
    return WallTimeEstimate(
        plan.n_runs, startup, baseline, warmup, measured, drain, gaps, parallel, unknown, per_config
    )


def estimate_study(plan: Plan, study: StudyConfig) -> WallTimeEstimate:
    """The study's wall time as `llem plan` shows it (text and JSON alike): the plan's runs; a
    search's most runs (`most_runs`) at its cells' runs' mean, a gap between each two."""
    execution = study.execution
    estimate = estimate_wall_time(plan, execution)
    if study.search is None:
        return estimate
    runs = most_runs(study, plan)
    return dataclasses.replace(
        estimate.scaled(runs / max(plan.n_runs, 1)),
        n_runs=runs,
        gaps_s=(runs - 1) * execution.gap_between_experiments_s,
        parallel=min(execution.max_parallel, max(runs, 1)),
    )


@dataclass(frozen=True)
class DeviceBudget:
    """A search's device time at its most runs beside its grid's, from the same per-run guess
    (`estimate_run`): wall seconds x the GPUs each run holds (run-seconds for a CPU run)."""

    unit: str  # "GPU-h", or "run-h" where no run holds a GPU
    search_runs: int
    search_h: float
    grid_runs: int | None  # None: a continuous space has no grid
    grid_h: float | None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "unit": self.unit,
            "search_runs": self.search_runs,
            "search": self.search_h,
            "grid_runs": self.grid_runs,
            "grid": self.grid_h,
            "method": "guess: each cell's runs' estimated duration x its GPUs; the search at "
            "its most runs (trials, a re-measurement each, the race's budget), the grid at "
            "every point of the space once per cell",
        }


def device_budget(
    plan: Plan, study: StudyConfig, estimate: WallTimeEstimate
) -> DeviceBudget | None:
    """A search's budget in device hours and its grid's, from `estimate`'s per-run guesses;
    None for a grid study."""
    if study.search is None:
        return None
    per_run = [
        run.total_s * max(planned.config.gpu_count, 1)
        for run, planned in zip(estimate.per_config, plan.configs, strict=True)
    ]
    mean_s = sum(per_run) / max(len(per_run), 1)
    gpus = any(planned.config.gpu_count for planned in plan.configs)
    points = study.search.space_size()
    grid_runs = None if points is None else points * plan.n_configs
    searched = most_runs(study, plan)
    return DeviceBudget(
        unit="GPU-h" if gpus else "run-h",
        search_runs=searched,
        search_h=searched * mean_s / 3600,
        grid_runs=grid_runs,
        grid_h=None if grid_runs is None else grid_runs * mean_s / 3600,
    )
