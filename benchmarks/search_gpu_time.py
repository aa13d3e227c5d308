"""What a search costs in GPU time against its grid, with the shared idle baseline, early
termination (pruning) and a warm start, each on and off: the search as documented (the README's
search block, as `search_efficiency.py` runs it) through the real scheduler on the simulated
executor, each run priced by a cost model.

The cost model (MODELLED, GPU-seconds, one GPU a run; the phases of `results/cost.py`): a run
costs START_LOAD_S (container start and model load) + BASELINE_S (the idle baseline) +
WARMUP_S + WINDOW_S (a serving load of N_REQUESTS requests). The grid: every point of the space
once, each run in full. The search: every run it made (trials, re-measurements, race), so the
figure is the GPU time until its winner is named.
- Shared baseline (`baseline.reuse_s`): every run after the first costs no baseline (the model
  assumes the GPU is back at its baseline's temperature each time: the most it can save).
- Pruning (`pruner: constraints`): a trial whose (noisy) figure fails a constraint the rule can
  settle (an upper bound on a per-request latency quantile) has its requests drawn in order from
  a log-normal (sigma SIGMA) whose quantile is that figure, and the real rule
  (`contract.pruning.LatencyBound.settled`) is applied after each: the trial stops at the first
  request it settles, its window priced by the requests sent, and it fails (infeasible, no
  figures), as a pruned trial does. A re-measurement or a race run is never pruned. Landscapes
  whose constraints cannot be settled this way (per-token ITL) show pruning as saving nothing.
- Slice pruning (`pruner: median`, offline trials; only where the objective is reported per
  slice): each trial's container reports its window so far at each tenth of it; the figure at
  slice k is the run's measured figure times (1 + N(0, noise * sqrt(10/k - 1))): a partial
  window is noisier, the whole window is the measurement. The real search, pruner and
  manifest decide; a pruned trial's window is priced by the slices it ran.
- Warm start: after the search with both on, a second search (another seed) warm-started from
  its folder; counted, against the trials the first search took to run its named winner: the
  second's trials until it ran that same configuration (`warm: same`), and until it ran one
  truly as good (`as good`: feasible, its true objective no worse).

Targets (issue 33): <= 5 % of the grid's GPU time on the 400-point landscape with everything on;
pruning (either pruner) saves >= 30 % at an equal share of winners within 5 %; a warm-started
second search runs the first's winner within <= 30 % of the runs the first took.

Run: OMP_NUM_THREADS=1 python benchmarks/search_gpu_time.py [--seeds 10] [--noise 0.03]
     [--landscape PATH.py ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from helpers.results import Figures, figures_of  # noqa: E402
from helpers.simulated import (  # noqa: E402
    SimulatedExecutor,
    SlicedExecutor,
    search_run,
    search_study,
)
from llenergymeasure.config.search import SLICE_PRUNERS  # noqa: E402
from llenergymeasure.contract.pruning import SLICE_METRICS, SLICES, LatencyBound  # noqa: E402
from llenergymeasure.orchestrator.executors.base import RunJob  # noqa: E402
from llenergymeasure.results.load import load_study_results  # noqa: E402
from llenergymeasure.results.search import search_view  # noqa: E402
from llenergymeasure.study.manifest import load_manifest  # noqa: E402
from search_efficiency import (  # noqa: E402
    CRASH,
    LANDSCAPES,
    SCRATCH,
    Landscape,
    Truth,
    load_landscape,
    noisy,
    readme_search,
    run_rng,
    search_config,
)

START_LOAD_S = 60.0
BASELINE_S = 30.0
WARMUP_S = 15.0
WINDOW_S = 120.0
N_REQUESTS = 240
SIGMA = 0.5  # log-normal spread of per-request latency
FULL_RUN_S = START_LOAD_S + BASELINE_S + WARMUP_S + WINDOW_S


@dataclass
class Run:
    key: str  # its configuration, as JSON
    window_share: float = 1.0  # the share of its window it ran (pruned: < 1)


@dataclass
class SearchOutcome:
    runs: list[Run]
    winner: dict[str, Any] | None
    winner_within: bool
    ran: list[dict[str, Any]]  # the configurations its trials ran, in order

    def gpu_s(self, shared_baseline: bool) -> float:
        total = 0.0
        for k, run in enumerate(self.runs):
            baseline = 0.0 if shared_baseline and k > 0 else BASELINE_S
            total += START_LOAD_S + baseline + WARMUP_S + WINDOW_S * run.window_share
        return total


def requests_to_settle(bound: LatencyBound, value: float, rng: random.Random) -> int | None:
    """The request after which the rule settles `bound` against a trial whose quantile is
    `value`; None: not within N_REQUESTS."""
    z = statistics.NormalDist().inv_cdf(bound.quantile)
    median = value / math.exp(z * SIGMA)
    within = 0
    for n in range(1, N_REQUESTS + 1):
        within += rng.lognormvariate(math.log(median), SIGMA) <= bound.bound
        if bound.settled(within, n) is not None:
            return n
    return None


class NoisySlices(SlicedExecutor):
    """Slices whose figures scatter around the run's as a partial window's would."""

    noise = 0.0
    started_order: list[str]

    def slice_figures(self, job: RunJob, figures: Figures, step: int) -> dict[str, float]:
        whole = super().slice_figures(job, figures, step)
        rng = run_rng("slice", job.run.run_index, step)
        spread = self.noise * math.sqrt(SLICES / step - 1)
        return {name: value * (1 + rng.gauss(0.0, spread)) for name, value in whole.items()}

    def start(self, job: RunJob) -> None:
        self.started_order.append(job.run.run_id)
        super().start(job)


def sliceable(landscape: Landscape) -> bool:
    """Whether a slice pruner can follow the landscape's objective."""
    return landscape.objective.get("minimize", landscape.objective.get("maximize")) in (
        SLICE_METRICS
    )


def run_search(
    landscape: Landscape,
    truth: Truth,
    block: dict[str, Any],
    seed: int,
    noise: float,
    folder: Path,
    prune: str,
) -> SearchOutcome:
    counter = itertools.count()
    runs: list[Run] = []
    seen: set[str] = set()
    bounds = [
        (c.metric, bound)
        for c in search_config(landscape, {}, seed).constraints
        if (bound := LatencyBound.of(c.metric, c.op, c.bound)) is not None
    ]

    def simulated(swept: dict[str, Any]) -> Figures | str:
        number = next(counter)
        key = json.dumps(swept, sort_keys=True)
        run = Run(key)
        runs.append(run)
        trial, _ = key not in seen, seen.add(key)
        figures = landscape.evaluate(swept)
        if figures is None:
            return CRASH
        measured = noisy(figures, run_rng("llem", seed, number), noise)
        if prune == "constraints" and trial:
            for metric, bound in bounds:
                if bound.bound >= measured[metric]:
                    continue
                n = requests_to_settle(bound, measured[metric], run_rng("prune", seed, number))
                if n is not None:
                    run.window_share = n / N_REQUESTS
                    return f"pruned after {n} of {N_REQUESTS} requests"
        return figures_of(measured)

    block = {**block, "pruner": prune}
    study = search_study(block, defaults=landscape.defaults())
    executor: type[SimulatedExecutor] = SimulatedExecutor
    started: list[str] = []
    if prune in SLICE_PRUNERS:
        executor = type("Sliced", (NoisySlices,), {"noise": noise, "started_order": started})
    code = search_run(folder, study, simulated, executor=executor).run()
    if code not in (0, 1):
        raise SystemExit(f"{landscape.name}, seed {seed}: the search exited {code}")
    record = load_manifest(folder / "study").search
    assert record is not None
    for run, run_id in zip(runs, started, strict=False):
        stopped = record.slices.get(run_id)
        if stopped is not None and stopped.pruned is not None:
            run.window_share = max(stopped.values) / SLICES
    view = search_view(load_study_results(folder / "study"))
    assert view is not None
    cell = view.cells[0]
    winner = cell.winner.params if cell.winner is not None else None
    ran = [t.params for t in cell.trials if t.run_id is not None and t.state != "skipped-duplicate"]
    return SearchOutcome(runs, winner, truth.within(winner), ran)


def first_run_of(ran: list[dict[str, Any]], params: dict[str, Any] | None) -> int | None:
    """The 1-based trial at which `params` first ran."""
    return next((k + 1 for k, p in enumerate(ran) if p == params), None)


def first_as_good(ran: list[dict[str, Any]], truth: Truth, target: dict[str, Any]) -> int | None:
    """The 1-based trial that first ran a feasible configuration at least as good, truly, as
    `target`."""
    goal = truth.search.goals[0]
    aim, _ = truth.value(target)
    for k, params in enumerate(ran):
        value, feasible = truth.value(params)
        if feasible and value is not None and aim is not None and not goal.better(aim, value):
            return k + 1
    return None


def bench(landscape: Landscape, seeds: list[int], noise: float) -> dict[str, Any]:
    base = readme_search()
    truth = Truth.of(search_config(landscape, base, seeds[0]), landscape.evaluate)
    grid_s = truth.grid * FULL_RUN_S
    ratios: dict[str, list[float]] = {
        "plain": [],
        "baseline": [],
        "pruning": [],
        "both": [],
        "median": [],
    }
    within: dict[str, list[bool]] = {"off": [], "on": [], "median": []}
    warm_runs: list[float] = []
    warm_good: list[float] = []
    warm_within: list[bool] = []
    for seed in seeds:
        block = landscape.search(base, seed)
        with tempfile.TemporaryDirectory(prefix="llem-gpu-time-", dir=SCRATCH) as scratch:
            root = Path(scratch)
            off = run_search(landscape, truth, block, seed, noise, root / "off", "none")
            on = run_search(landscape, truth, block, seed, noise, root / "on", "constraints")
            if sliceable(landscape):
                median = run_search(landscape, truth, block, seed, noise, root / "med", "median")
                ratios["median"].append(median.gpu_s(False) / grid_s)
                within["median"].append(median.winner_within)
            ratios["plain"].append(off.gpu_s(False) / grid_s)
            ratios["baseline"].append(off.gpu_s(True) / grid_s)
            ratios["pruning"].append(on.gpu_s(False) / grid_s)
            ratios["both"].append(on.gpu_s(True) / grid_s)
            within["off"].append(off.winner_within)
            within["on"].append(on.winner_within)
            first_at = first_run_of(on.ran, on.winner)
            if on.winner is not None and first_at is not None:
                warm_block = {
                    **block,
                    "seed": seed + 1000,
                    "warm_start": [str(root / "on" / "study")],
                }
                warm = run_search(
                    landscape, truth, warm_block, seed + 1000, noise, root / "warm", "constraints"
                )
                at = first_run_of(warm.ran, on.winner)
                warm_runs.append((at if at is not None else len(warm.ran) + 1) / first_at)
                good = first_as_good(warm.ran, truth, on.winner)
                warm_good.append((good if good is not None else len(warm.ran) + 1) / first_at)
                warm_within.append(warm.winner_within)
    return {
        "grid": truth.grid,
        "grid_gpu_h": grid_s / 3600,
        "of_grid_median": {k: statistics.median(v) if v else None for k, v in ratios.items()},
        "pruning_saves": 1
        - statistics.median(ratios["pruning"]) / statistics.median(ratios["plain"]),
        "median_saves": (
            1 - statistics.median(ratios["median"]) / statistics.median(ratios["plain"])
            if ratios["median"]
            else None
        ),
        "winner_within": {k: sum(v) / len(v) if v else None for k, v in within.items()},
        "warm_runs_to_first_winner": statistics.median(warm_runs) if warm_runs else None,
        "warm_runs_to_as_good": statistics.median(warm_good) if warm_good else None,
        "warm_winner_within": sum(warm_within) / len(warm_within) if warm_within else None,
        "warm_searches": len(warm_runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--landscape", type=Path, action="append", metavar="PATH.py")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.03)
    args = parser.parse_args()
    paths = args.landscape or [
        *sorted(LANDSCAPES.glob("*.py")),
        *sorted((LANDSCAPES / "checks").glob("*.py")),
    ]
    seeds = list(range(args.seeds))
    print(
        f"MODELLED GPU time (run = {START_LOAD_S:g} s start+load + {BASELINE_S:g} s baseline + "
        f"{WARMUP_S:g} s warm-up + {WINDOW_S:g} s window of {N_REQUESTS} requests), "
        f"{args.seeds} seeds, noise {args.noise:g}; search GPU time / grid GPU time, median\n"
    )
    header = (
        f"{'landscape':<20} {'grid':>5} {'plain':>7} {'+base':>7} {'+prune':>7} {'both':>7} "
        f"{'prune saves':>11} {'within off/on':>13} {'+median':>8} {'saves':>6} {'within':>6} "
        f"{'warm: same':>10} {'as good':>8} {'warm within':>11}"
    )
    print(header)
    for path in paths:
        landscape = load_landscape(path)
        f = bench(landscape, seeds, args.noise)
        r = f["of_grid_median"]
        warm = f["warm_runs_to_first_winner"]
        warm_within = f["warm_winner_within"]
        good = f["warm_runs_to_as_good"]
        med, med_saves, med_within = r["median"], f["median_saves"], f["winner_within"]["median"]
        print(
            f"{landscape.name:<20} {f['grid']:>5} {r['plain']:>7.1%} {r['baseline']:>7.1%} "
            f"{r['pruning']:>7.1%} {r['both']:>7.1%} {f['pruning_saves']:>11.1%} "
            f"{f['winner_within']['off']:>6.0%}/{f['winner_within']['on']:<6.0%} "
            f"{'-' if med is None else f'{med:.1%}':>8} "
            f"{'-' if med_saves is None else f'{med_saves:.0%}':>6} "
            f"{'-' if med_within is None else f'{med_within:.0%}':>6} "
            f"{'-' if warm is None else f'{warm:.0%}':>10} "
            f"{'-' if good is None else f'{good:.0%}':>8} "
            f"{'-' if warm_within is None else f'{warm_within:.0%}':>11}",
            flush=True,
        )


if __name__ == "__main__":
    main()
