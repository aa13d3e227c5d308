"""What a run cost in device time, by phase, and what a search spent against its grid.

A run holds its GPUs from its container's start to its end: its cost is that wall time x the
GPUs it held (GPU-seconds); a CPU run's is its wall time (run-seconds). The phases come from
the container's own timings (`result.timings`) and the host's record of the container
(`RunRecord.duration_s`, start to exit):

- `container`: the host's wall time less the experiment process's (container start, the
  interpreter and imports, teardown);
- `load`: the model (or engine) load, an engine build and the tokeniser with the prompt set;
- `baseline`: the idle-power reading (0 where the run reused an earlier run's,
  `baseline.reuse_s`: counted in `baselines_reused`);
- `warmup`: the warm-up (thermal included);
- `window`: the measured window (serving: the steady-state window);
- `other`: the rest of the experiment process (probes, a serving run's sending outside its
  window, writing the result).

A run without a result (failed, killed) has its whole wall time as `unfinished`. All of it is
measured: nothing here is modelled except the grid's cost, which says so (`grid_estimate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.contract.pruning import is_pruned
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest_models import RunRecord

PHASES = ("container", "load", "baseline", "warmup", "window", "other", "unfinished")
GPU_SECONDS = "GPU-s"
RUN_SECONDS = "run-s"  # CPU runs: wall time, no GPU held


@dataclass(frozen=True)
class RunCost:
    """One run's wall seconds by phase and the GPUs it held (0: a CPU run)."""

    seconds: dict[str, float]
    gpus: int
    baseline_reused: bool = False
    pruned: bool = False  # a search trial its container stopped early (`contract.pruning`)

    @property
    def unit(self) -> str:
        return GPU_SECONDS if self.gpus else RUN_SECONDS

    @property
    def held(self) -> int:
        """What a wall second counts: the GPUs held, or the run itself on CPU."""
        return max(self.gpus, 1)

    @property
    def total(self) -> float:
        """In `unit`: wall seconds x GPUs held (a CPU run: wall seconds)."""
        return sum(self.seconds.values()) * self.held

    @property
    def finished(self) -> bool:
        return "unfinished" not in self.seconds


def run_cost(record: RunRecord | None, result: ExperimentResult | None) -> RunCost | None:
    """A run's cost from its record and result; None where it never held a container (no
    wall time recorded)."""
    if record is None or record.duration_s is None:
        return None
    gpus = len(record.gpu_indices)
    if result is None:
        return RunCost({"unfinished": record.duration_s}, gpus, pruned=is_pruned(record.error_type))
    t = result.timings
    load = t.load_s + (t.engine_build_s or 0.0) + t.tokenisation_s
    inside = {"load": load, "baseline": t.baseline_s, "warmup": t.warmup_s, "window": t.window_s}
    seconds = {
        "container": max(record.duration_s - t.total_s, 0.0),
        **inside,
        "other": max(t.total_s - sum(inside.values()), 0.0),
    }
    return RunCost(seconds, gpus, result.energy.baseline_reused_from is not None)


@dataclass
class Spent:
    """Costs summed: in total, by phase, and the runs counted."""

    total: float = 0.0
    runs: int = 0
    by_phase: dict[str, float] = field(default_factory=dict)
    baselines_reused: int = 0  # runs that reused an earlier run's idle baseline
    pruned: int = 0  # trials stopped early: their time is in `unfinished`

    def add(self, cost: RunCost) -> None:
        self.total += cost.total
        self.runs += 1
        self.baselines_reused += cost.baseline_reused
        self.pruned += cost.pruned
        for phase, seconds in cost.seconds.items():
            self.by_phase[phase] = self.by_phase.get(phase, 0.0) + seconds * cost.held

    def as_json(self) -> dict[str, Any]:
        return {
            "total": round(self.total, 3),
            "runs": self.runs,
            "baselines_reused": self.baselines_reused,
            "pruned": self.pruned,
            "by_phase": {p: round(self.by_phase[p], 3) for p in PHASES if p in self.by_phase},
        }


@dataclass(frozen=True)
class SearchCost:
    """What a search cell spent by purpose, and the grid's cost estimated from its runs."""

    unit: str
    spent: dict[str, Spent]  # purpose (search, remeasure, confirmation) -> its runs' cost
    mean_run: float | None  # the mean cost of a run that finished, in `unit`
    grid_points: int | None

    @property
    def total(self) -> float:
        return sum(s.total for s in self.spent.values())

    @property
    def grid_estimate(self) -> float | None:
        """Modelled: the grid's points x the mean measured cost of a finished run."""
        if self.grid_points is None or self.mean_run is None:
            return None
        return self.grid_points * self.mean_run

    @property
    def of_grid(self) -> float | None:
        estimate = self.grid_estimate
        return self.total / estimate if estimate else None

    def as_json(self) -> dict[str, Any]:
        estimate = self.grid_estimate
        return {
            "unit": self.unit,
            "total": round(self.total, 3),
            "spent": {purpose: spent.as_json() for purpose, spent in self.spent.items()},
            "mean_run": None if self.mean_run is None else round(self.mean_run, 3),
            "grid_estimate": None
            if estimate is None
            else {
                "value": round(estimate, 3),
                "how": "modelled: the grid's configurations x the mean measured cost of a "
                "finished run of this search",
            },
            "of_grid": None if self.of_grid is None else round(self.of_grid, 4),
        }

    def text(self) -> str:
        """One line: the total, by purpose, and against the grid."""
        hours = self.unit.replace("-s", "-h")
        parts = ", ".join(f"{purpose} {s.total / 3600:.3g}" for purpose, s in self.spent.items())
        line = f"cost: {self.total / 3600:.3g} {hours} ({parts}; measured)"
        pruned = sum(s.pruned for s in self.spent.values())
        if pruned:
            line += f"; {pruned} trial(s) pruned"
        reused = sum(s.baselines_reused for s in self.spent.values())
        if reused:
            runs = sum(s.runs for s in self.spent.values())
            line += f"; {reused} of {runs} runs reused an earlier run's idle baseline"
        estimate = self.grid_estimate
        if estimate and self.of_grid is not None:
            line += (
                f"; the grid of {self.grid_points} configurations: about {estimate / 3600:.3g} "
                f"{hours} (modelled from the mean run), {self.of_grid:.1%} of it"
            )
        return line


def search_cost(
    by_purpose: dict[str, Iterable[RunCost | None]], grid_points: int | None
) -> SearchCost:
    """A cell's cost from its runs' costs by purpose (a run not started counts nothing)."""
    spent: dict[str, Spent] = {}
    finished: list[RunCost] = []
    gpus = 0
    for purpose, costs in by_purpose.items():
        spent[purpose] = Spent()
        for cost in costs:
            if cost is None:
                continue
            spent[purpose].add(cost)
            gpus = max(gpus, cost.gpus)
            if cost.finished:
                finished.append(cost)
    mean = sum(c.total for c in finished) / len(finished) if finished else None
    return SearchCost(GPU_SECONDS if gpus else RUN_SECONDS, spent, mean, grid_points)
