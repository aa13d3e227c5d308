"""Search efficiency and the search's own cost, on simulated runs (no container).

Part 1, efficiency. Each simulated run returns a known landscape's value times 1 + N(0, 2 %)
noise (run-to-run noise of a stable GPU configuration). Over 20 seeds, how many trials each
method needs before it has run a configuration whose *true* value is within 5 % of the true
optimum (feasible), capped at the trial budget (a capped run counts as the cap):
  - tpe and random: the search's own per-cell sampler (`CellSampler`: Optuna, reseeded per
    ask, constraints told through `set_constraint`), asked and told one trial at a time;
  - grid: a full grid must run every point before it knows its best, so it needs all of them.
Landscapes (fixed here, not tuned to any sampler):
  (a) smooth 2-D integers, x, y in 1..20 (400 points):
      f = 1 + u^2 + v^2 + 0.3 u v with u = (x - 13) / 6, v = (y - 6) / 5; optimum 1 at (13, 6).
  (b) 4-D mixed, an engine-like trade-off with an infeasible region:
      batch b in 1..64 (log), memory fraction m in 0.5..0.95, precision p in {fp32, fp16, bf16},
      chunk c in 16..512 (log);
      J/token = base(p) (1 + 4 / b) (1 + 5 (m - 0.8)^2) (1 + 0.2 (log2 c - 7)^2 / 9),
      base = {fp32: 1.6, fp16: 1.0, bf16: 1.05};
      TTFT p99 = 20 + 3 b + 2000 / c, constraint TTFT p99 <= 150 ms;
      m > 0.9 with b > 40 runs out of memory (a failed run: infeasible, no figures).
      The true optimum is found by enumerating b, c, p at m = 0.8 (the m factor's minimum).
      The "grid" figure for (b) counts m on a 0.05 grid (10 values).
Targets: TPE's median <= 15 % of the grid's runs on (a), and <= 0.7 x random search's median on
both.

Part 2, cost. A search through the real scheduler, collector and manifest (fsync'd), on the
simulated executor (tests/helpers/simulated.py), to 1,000 completed trials over a 200 x 200
integer space; the search's own time per trial (asking: sampler, configuration, manifest lines;
telling: reading the result, judging it, the sampler's tell) over the last 100 trials.
Target: <= 50 ms per trial.

Run: python benchmarks/search_efficiency.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.results import Figures
from helpers.simulated import search_run, search_study
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.orchestrator.schedule.search.sampler import CellSampler
from llenergymeasure.results.search import UNMEASURED_VIOLATION, Judgement
from llenergymeasure.study.expand import expand
from llenergymeasure.study.search_space import cells_of, search_plan_of

NOISE = 0.02
WITHIN = 1.05

# (a) -----------------------------------------------------------------------------------------


def smooth(params: dict[str, Any]) -> tuple[float | None, float | None]:
    u = (params["n_prompts"] - 13) / 6
    v = (params["max_new_tokens"] - 6) / 5
    return 1 + u * u + v * v + 0.3 * u * v, None


SMOOTH_SPACE = {"n_prompts": {"low": 1, "high": 20}, "max_new_tokens": {"low": 1, "high": 20}}
SMOOTH_OPTIMUM = 1.0
SMOOTH_GRID = 400

# (b) -----------------------------------------------------------------------------------------
BASE = {"fp32": 1.6, "fp16": 1.0, "bf16": 1.05}
TTFT_BOUND = 150.0


def engine_like(params: dict[str, Any]) -> tuple[float | None, float | None]:
    b, m = params["pytorch.batch_size"], params["decoding.temperature"]
    p, c = params["precision"], params["max_new_tokens"]
    if m > 0.9 and b > 40:
        return None, None  # out of memory: no figures
    energy = (
        BASE[p] * (1 + 4 / b) * (1 + 5 * (m - 0.8) ** 2) * (1 + 0.2 * (math.log2(c) - 7) ** 2 / 9)
    )
    return energy, 20 + 3 * b + 2000 / c


ENGINE_SPACE = {
    "pytorch.batch_size": {"low": 1, "high": 64, "log": True},
    "decoding.temperature": {"low": 0.5, "high": 0.95},  # stands for a memory fraction
    "precision": ["fp32", "fp16", "bf16"],
    "max_new_tokens": {"low": 16, "high": 512, "log": True},
}


def engine_optimum() -> float:
    best = math.inf
    for b in range(1, 65):
        for c in range(16, 513):
            for p in BASE:
                params = {
                    "pytorch.batch_size": b,
                    "decoding.temperature": 0.8,
                    "precision": p,
                    "max_new_tokens": c,
                }
                energy, ttft = engine_like(params)
                if energy is not None and ttft is not None and ttft <= TTFT_BOUND:
                    best = min(best, energy)
    return best


ENGINE_GRID = 64 * (512 - 16 + 1) * 3 * 10

# the search loop ------------------------------------------------------------------------------
Landscape = Callable[[dict[str, Any]], tuple[float | None, float | None]]


def sampler_for(space: dict[str, Any], sampler: str, seed: int, constrained: bool) -> CellSampler:
    search: dict[str, Any] = {
        "objective": {"minimize": "energy.j_per_output_token"},
        "space": space,
        "sampler": sampler,
        "seed": seed,
    }
    if constrained:
        search["constraints"] = [f"latency.ttft_ms.p99 <= {TTFT_BOUND:g}"]
    study = StudyConfig.model_validate(
        {"name": "bench", "defaults": {"model": "stub:m"}, "search": search}
    )
    assert study.search is not None
    plan = search_plan_of(study.search, expand(study), lambda path: path)
    return CellSampler(study.search, cells_of(plan)[0])


def trials_to_reach(
    landscape: Landscape, space: dict[str, Any], sampler: str, seed: int, optimum: float, cap: int
) -> int:
    constrained = landscape is engine_like
    cell = sampler_for(space, sampler, seed, constrained)
    noise = random.Random(seed)
    for number in range(cap):
        params, notes = cell.ask(number)
        true_value, ttft = landscape(params)
        if true_value is None:
            judgement = Judgement(False, [None], [None], [UNMEASURED_VIOLATION, 0.0], "oom", True)
        else:
            measured = true_value * (1 + noise.gauss(0, NOISE))
            violations = [0.0]
            feasible = True
            if constrained:
                assert ttft is not None
                violation = (ttft - TTFT_BOUND) / TTFT_BOUND
                violations.append(violation if violation > 0 else min(violation, 0.0))
                feasible = ttft <= TTFT_BOUND
            judgement = Judgement(
                feasible, [measured], [ttft] if constrained else [], violations, None
            )
            if feasible and true_value <= optimum * WITHIN:
                return number + 1
        cell.tell(number, params, notes, judgement)
    return cap


def efficiency(seeds: int) -> None:
    print(f"Part 1: trials until a configuration within {WITHIN - 1:.0%} of the true optimum")
    print(f"        ({seeds} seeds; noise {NOISE:.0%} per run; capped runs count as the cap)\n")
    cases = [
        ("(a) smooth 2-D, 400 points", smooth, SMOOTH_SPACE, SMOOTH_OPTIMUM, SMOOTH_GRID, 400),
        (
            "(b) 4-D mixed, infeasible region",
            engine_like,
            ENGINE_SPACE,
            engine_optimum(),
            ENGINE_GRID,
            400,
        ),
    ]
    for title, landscape, space, optimum, grid, cap in cases:
        medians = {}
        started = time.perf_counter()
        total = 0
        for sampler in ("tpe", "random"):
            counts = [
                trials_to_reach(landscape, space, sampler, seed, optimum, cap)
                for seed in range(seeds)
            ]
            total += sum(counts)
            medians[sampler] = statistics.median(counts)
            capped = sum(count >= cap for count in counts)
            print(
                f"{title:36s} {sampler:6s} median {medians[sampler]:6.1f}  "
                f"p25 {_pct(counts, 25):5.1f}  p75 {_pct(counts, 75):5.1f}  "
                f"max {max(counts):4d}  capped {capped}/{seeds}"
            )
        rate = total / (time.perf_counter() - started)
        print(f"{title:36s} grid   {grid:,} runs (every point, to know its best)")
        print(
            f"{'':36s} TPE/grid {medians['tpe'] / grid:.3f} (target <= 0.15 on (a)), "
            f"TPE/random {medians['tpe'] / medians['random']:.2f} (target <= 0.70); "
            f"optimum {optimum:.4f}; {rate:.0f} simulated trials/s\n"
        )


def _pct(values: list[int], q: int) -> float:
    return float(statistics.quantiles(values, n=100, method="inclusive")[q - 1])


# part 2 ---------------------------------------------------------------------------------------


def cost(trials: int) -> None:
    print(f"Part 2: the search's own cost per trial at {trials:,} completed trials")

    def landscape(swept: dict[str, Any]) -> Figures:
        u, v = (swept["n_prompts"] - 120) / 60, (swept["max_new_tokens"] - 70) / 50
        return Figures(tokens_per_s=100.0, j_per_token=1 + u * u + v * v)

    study = search_study(
        {
            "objective": {"minimize": "energy.j_per_output_token"},
            "space": {
                "n_prompts": {"low": 1, "high": 200},
                "max_new_tokens": {"low": 1, "high": 200},
            },
            "trials": trials,
            "confirm": {"top": 0},
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        run = search_run(Path(folder), study, landscape)
        source = run.scheduler.source
        spent: list[float] = []
        asked: dict[str, float] = {}
        head, ended = source.head, source.ended

        def timed_head() -> Any:
            before = len(source.queued)
            started = time.perf_counter()
            found = head()
            if len(source.queued) > before and found is not None:
                asked[found.run_id] = time.perf_counter() - started
            return found

        def timed_ended(run_id: str) -> None:
            started = time.perf_counter()
            ended(run_id)
            spent.append(asked.pop(run_id, 0.0) + time.perf_counter() - started)

        source.head, source.ended = timed_head, timed_ended  # type: ignore[method-assign]
        started = time.perf_counter()
        run.run()
        wall = time.perf_counter() - started
    last = spent[-100:]
    print(
        f"  {len(spent):,} trials in {wall:.1f} s with the simulated executor "
        f"({len(spent) / wall:.0f} trials/s end to end)"
    )
    print(
        f"  search's own time per trial over the last 100: median "
        f"{1000 * statistics.median(last):.1f} ms, max {1000 * max(last):.1f} ms (target <= 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=1000, help="part 2's completed trials")
    args = parser.parse_args()
    efficiency(args.seeds)
    cost(args.trials)


if __name__ == "__main__":
    main()
