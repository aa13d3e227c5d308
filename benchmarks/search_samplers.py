"""Which sampler a search should use: candidate samplers compared on simulated landscapes.

No scheduler and no container: each candidate is the search's own per-cell sampler
(`CellSampler`: Optuna, reseeded per ask, constraints told through `set_constraint`, lists of
numbers as ordinals), asked and told one trial at a time, with a `SamplerChoice` forced per
candidate. A simulated run returns the landscape's true figures times 1 + N(0, 3 %) each
(run-to-run noise), or nothing (a run out of memory: a failed, infeasible trial). A suggestion
whose configuration ran already reuses that run's figures without a new run, as llem does.

The figure: runs (distinct configurations run) until one whose *true* objective is within 5 %
of the true feasible optimum (and truly feasible) has run; with several objectives, until every
point of the true Pareto front has a truly feasible configuration run within 5 % of it on each
objective. Median and p90 over the seeds; a search that reaches the cap, or whose sampler
repeats itself 50 times in a row (llem's "exhausted"), counts as the cap (`capped`: how often).
Lower is better. `s/search`: the sampler's own time for one search, s.

Candidates: `tpe-categ` is the previous version (TPE, Optuna's 10 random trials, every list a
categorical); `tpe` and `gp` the same samplers with lists of numbers as ordinals; `-s5` starts
the model after 5 random trials instead of 10; `-norep` replaces a GP suggestion of a point
already asked by a random one; `-categ` runs with every list a categorical; `auto` is
what `sampler: auto` picks for the landscape (its figures are those of the candidate with the
same settings).

Landscapes: these, fixed here and not tuned to a sampler, plus every
`benchmarks/landscapes/*.py` module (SPACE, OBJECTIVE, CONSTRAINTS, optional SEARCH,
evaluate(params) -> dict of metric -> value, or None for a failed run); the true optimum and
front come from enumerating the finite space (a module with a continuous range gives OPTIMUM).
  smooth-2d  400 points: n_prompts 1..20 x max_new_tokens 8..160 step 8, both lists;
             J/token = 1 + u^2 + v^2 + 0.3 u v, u = (n - 13) / 6, v = (t / 8 - 6) / 5.
  constr-3d  240 points: batch [1..512, powers of 2] x tokens [16..128 step 16] x t [.5 .7 .9];
             J/token = (1 + 8 / b)(1 + (log2 c - 6)^2 / 8)(1 + 3 (t - 0.7)^2),
             TTFT p99 = 15 + 0.9 b + c / 4 <= 120 ms.
  cat-oom-4d 864 points: batch [1..128, powers of 2] x memory fraction [.5 .6 .7 .8 .9 .95]
             (stood for by decoding.temperature) x precision {fp32, fp16, bf16} (a categorical)
             x chunk [16..512, powers of 2]; the engine-like trade-off of
             benchmarks/search_efficiency.py (b): J/token = base(p)(1 + 4 / b)
             (1 + 5 (m - 0.8)^2)(1 + 0.2 (log2 c - 7)^2 / 9), TTFT p99 = 20 + 3 b + 2000 / c
             <= 150 ms, and m > 0.85 with b >= 64 runs out of memory.
  mixed-6d   8640 points: cat-oom-4d x n_prompts [1 2 4 8 16] x torch_compile {false, true};
             J/token x 0.92 compiled x (1 + 0.05 (log2 n - 2)^2), TTFT x 0.92 compiled + 2 n,
             and a compiled batch of 128 runs out of memory too.
  pareto-3d  constr-3d's space and figures, two objectives: J/token and TTFT p99, both
             minimized, no constraint.

Part 2: the sampler's own time for one ask after n told trials (GP refits over every trial at
each ask), on mixed-6d; what bounds `auto`'s GP by the trials.

Run: python benchmarks/search_samplers.py [--seeds 20] [--cap 150] [--jobs 2] [--only NAME ...]
     [--cost 25 50 100 200 400]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The GP sampler's torch and BLAS threads compete on a busy host (Optuna's own advice); read
# when torch is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from llenergymeasure.config.search import Range, SearchConfig
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.config import BACKENDS
from llenergymeasure.orchestrator.schedule.search import sampler as sampler_module
from llenergymeasure.orchestrator.schedule.search.sampler import CellSampler
from llenergymeasure.results.search import UNMEASURED_VIOLATION, Judgement
from llenergymeasure.study.expand import expand
from llenergymeasure.study.sampler_choice import (
    SamplerChoice,
    choose_sampler,
    gp_installed,
)
from llenergymeasure.study.search_space import cells_of, search_plan_of

NOISE = 0.03
WITHIN = 0.05
REPEATS_BEFORE_EXHAUSTED = 50  # as the search source's
J = "energy.j_per_output_token"
TTFT = "latency.ttft_ms.p99"
LANDSCAPES_DIR = Path(__file__).resolve().parent / "landscapes"

# The candidates of one objective (several: MULTI_CANDIDATES): (label, the sampler forced);
# `auto` is added per landscape (what the rule
# picks for its space).
CATEGORICAL = "-categ"  # a candidate run with every list a categorical, as before ordinals
CANDIDATES: list[tuple[str, SamplerChoice]] = [
    ("tpe-categ", SamplerChoice("tpe", startup=10)),  # the previous version
    ("tpe", SamplerChoice("tpe", startup=10)),
    ("tpe-s5", SamplerChoice("tpe", startup=5)),
    ("gp", SamplerChoice("gp", startup=10, no_repeats=False)),
    ("gp-norep", SamplerChoice("gp", startup=10)),
    ("gp-s5-norep", SamplerChoice("gp", startup=5)),
    ("gp-s5-norep-categ", SamplerChoice("gp", startup=5)),
    ("random", SamplerChoice("random")),
]


@dataclass(frozen=True)
class Landscape:
    name: str
    space: dict[str, Any]
    objective: dict[str, str] | list[dict[str, str]]  # several: a Pareto front
    constraints: list[str]
    evaluate: Callable[[dict[str, Any]], dict[str, float] | None]
    search: dict[str, Any] = field(default_factory=dict)
    optimum: float | None = None  # one objective over a continuous space: its true optimum


# smooth-2d ------------------------------------------------------------------------------------
def _smooth(params: dict[str, Any]) -> dict[str, float]:
    u = (params["n_prompts"] - 13) / 6
    v = (params["max_new_tokens"] / 8 - 6) / 5
    return {J: 1 + u * u + v * v + 0.3 * u * v}


SMOOTH_2D = Landscape(
    "smooth-2d",
    {"n_prompts": list(range(1, 21)), "max_new_tokens": list(range(8, 161, 8))},
    {"minimize": J},
    [],
    _smooth,
)


# constr-3d ------------------------------------------------------------------------------------
def _constrained(params: dict[str, Any]) -> dict[str, float]:
    b, c = params["pytorch.batch_size"], params["max_new_tokens"]
    t = params["decoding.temperature"]
    energy = (1 + 8 / b) * (1 + (math.log2(c) - 6) ** 2 / 8) * (1 + 3 * (t - 0.7) ** 2)
    return {J: energy, TTFT: 15 + 0.9 * b + c / 4}


CONSTR_3D = Landscape(
    "constr-3d",
    {
        "pytorch.batch_size": [2**i for i in range(10)],
        "max_new_tokens": list(range(16, 129, 16)),
        "decoding.temperature": [0.5, 0.7, 0.9],
    },
    {"minimize": J},
    [f"{TTFT} <= 120"],
    _constrained,
)

# cat-oom-4d -----------------------------------------------------------------------------------
BASE = {"fp32": 1.6, "fp16": 1.0, "bf16": 1.05}


def _engine_like(params: dict[str, Any]) -> dict[str, float] | None:
    b, m = params["pytorch.batch_size"], params["decoding.temperature"]
    p, c = params["precision"], params["max_new_tokens"]
    if m > 0.85 and b >= 64:
        return None  # out of memory: no figures
    energy = (
        BASE[p] * (1 + 4 / b) * (1 + 5 * (m - 0.8) ** 2) * (1 + 0.2 * (math.log2(c) - 7) ** 2 / 9)
    )
    return {J: energy, TTFT: 20 + 3 * b + 2000 / c}


CAT_OOM_4D = Landscape(
    "cat-oom-4d",
    {
        "pytorch.batch_size": [2**i for i in range(8)],
        "decoding.temperature": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
        "precision": ["fp32", "fp16", "bf16"],
        "max_new_tokens": [2**i for i in range(4, 10)],
    },
    {"minimize": J},
    [f"{TTFT} <= 150"],
    _engine_like,
)


# mixed-6d -------------------------------------------------------------------------------------
def _mixed(params: dict[str, Any]) -> dict[str, float] | None:
    compiled, n = params["pytorch.torch_compile"], params["n_prompts"]
    figures = _engine_like(params)
    b = params["pytorch.batch_size"]
    if figures is None or (compiled and b >= 128):
        return None  # out of memory (compiled graphs take more at the largest batch)
    speedup = 0.92 if compiled else 1.0
    return {
        J: figures[J] * speedup * (1 + 0.05 * (math.log2(n) - 2) ** 2),
        TTFT: figures[TTFT] * speedup + 2 * n,
    }


MIXED_6D = Landscape(
    "mixed-6d",
    {**CAT_OOM_4D.space, "n_prompts": [1, 2, 4, 8, 16], "pytorch.torch_compile": [False, True]},
    {"minimize": J},
    [f"{TTFT} <= 150"],
    _mixed,
)

# pareto-3d: constr-3d's space, energy against latency (no constraint) ---------------------------
PARETO_3D = Landscape(
    "pareto-3d", CONSTR_3D.space, [{"minimize": J}, {"minimize": TTFT}], [], _constrained
)
MULTI_CANDIDATES: list[tuple[str, SamplerChoice]] = [
    ("nsga2", SamplerChoice("nsga2")),
    ("tpe-categ", SamplerChoice("tpe", startup=10)),
    ("tpe", SamplerChoice("tpe", startup=10)),
    ("tpe-s5", SamplerChoice("tpe", startup=5)),
    ("gp-s5-norep", SamplerChoice("gp", startup=5)),
    ("random", SamplerChoice("random")),
]

BUILT_IN = [SMOOTH_2D, CONSTR_3D, CAT_OOM_4D, MIXED_6D, PARETO_3D]


def landscape_modules() -> list[Landscape]:
    """Every benchmarks/landscapes/*.py module, as a Landscape."""
    found = []
    for path in sorted(LANDSCAPES_DIR.glob("*.py")) if LANDSCAPES_DIR.is_dir() else []:
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"landscape_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.append(
            Landscape(
                path.stem,
                dict(module.SPACE),
                dict(module.OBJECTIVE),
                list(getattr(module, "CONSTRAINTS", [])),
                module.evaluate,
                dict(getattr(module, "SEARCH", {})),
                getattr(module, "OPTIMUM", None),
            )
        )
    return found


# the search loop ------------------------------------------------------------------------------
def search_config(landscape: Landscape, seed: int) -> tuple[StudyConfig, SearchConfig]:
    goals = landscape.objective
    search = {
        **landscape.search,
        **({"objectives": goals} if isinstance(goals, list) else {"objective": goals}),
        "constraints": landscape.constraints,
        "space": landscape.space,
        "seed": seed,
    }
    defaults: dict[str, Any] = {"model": "stub:m"}
    backends = {key.split(".")[0] for key in landscape.space} & set(BACKENDS)
    if backends:  # a landscape of one backend's keys
        (defaults["backend"],) = backends
    study = StudyConfig.model_validate({"name": "bench", "defaults": defaults, "search": search})
    assert study.search is not None
    return study, study.search


def cell_sampler(landscape: Landscape, seed: int, choice: SamplerChoice | None) -> CellSampler:
    study, search = search_config(landscape, seed)
    plan = search_plan_of(search, expand(study), lambda path: path)
    return CellSampler(search, cells_of(plan)[0], choice)


def objectives(search: SearchConfig, figures: dict[str, float] | None) -> list[float] | None:
    """The objectives of figures that meet every constraint, each signed to be minimized;
    None for a run that failed or missed a constraint."""
    if figures is None or not all(c.met_by(figures[c.metric]) for c in search.constraints):
        return None
    return [
        figures[goal.metric] * (1 if goal.direction == "minimize" else -1) for goal in search.goals
    ]


def covers(run: list[float], point: list[float]) -> bool:
    """Whether a run's (minimized) objectives are each within 5 % of the point's, or better."""
    return all(r <= p + WITHIN * abs(p) for r, p in zip(run, point, strict=True))


def front(points: list[list[float]]) -> list[list[float]]:
    """The points no other point is at least as good as on every objective and better on one."""
    return [
        p
        for p in points
        if not any(all(x <= y for x, y in zip(q, p, strict=True)) and q != p for q in points)
    ]


@dataclass
class Target:
    """What counts as found, from the landscape's every point (true figures, no noise). One
    objective: a configuration truly feasible and within 5 % of the true feasible optimum.
    Several: every point of the true Pareto front has a truly feasible configuration run
    within 5 % of it (or better) on every objective."""

    search: SearchConfig
    feasible: list[list[float]]

    @classmethod
    def of(cls, landscape: Landscape) -> Target:
        _, search = search_config(landscape, 0)
        if landscape.optimum is not None:
            sign = 1 if search.goals[0].direction == "minimize" else -1
            return cls(search, [[sign * landscape.optimum]])
        values = []
        for dimension in landscape.space.values():
            listed = dimension if isinstance(dimension, list) else Range(**dimension).grid()
            assert listed is not None, f"{landscape.name}: a continuous space needs OPTIMUM"
            values.append(listed)
        found = [
            objectives(search, landscape.evaluate(dict(zip(landscape.space, point, strict=True))))
            for point in itertools.product(*values)
        ]
        return cls(search, [value for value in found if value is not None])

    def describe(self) -> str:
        if len(self.search.goals) == 1:
            best = min(point[0] for point in self.feasible)
            sign = 1 if self.search.goals[0].direction == "minimize" else -1
            return f"true optimum {sign * best:.4g}"
        return f"true Pareto front of {len(front(self.feasible))} points"

    def checker(self) -> Callable[[dict[str, float] | None], bool]:
        """A fresh search's test: told each new run's true figures, whether it is found."""
        if len(self.search.goals) == 1:
            best = min(point[0] for point in self.feasible)
            bound = best + WITHIN * abs(best)
            return lambda truth: (
                (value := objectives(self.search, truth)) is not None and (value[0] <= bound)
            )
        uncovered = front(self.feasible)

        def covered(truth: dict[str, float] | None) -> bool:
            value = objectives(self.search, truth)
            if value is not None:
                uncovered[:] = [point for point in uncovered if not covers(value, point)]
            return not uncovered

        return covered


def judgement(search: SearchConfig, figures: dict[str, float] | None) -> Judgement:
    """What llem's judge makes of a run's figures (no result: failed, unmeasured)."""
    n, goals = len(search.constraints), search.goals
    if figures is None:
        return Judgement(
            False,
            [None] * len(goals),
            [None] * n,
            [UNMEASURED_VIOLATION] + [0.0] * n,
            "oom",
            failed=True,
        )
    readings = [figures[c.metric] for c in search.constraints]
    violations = [c.violation(v) for c, v in zip(search.constraints, readings, strict=True)]
    feasible = all(v <= 0 for v in violations)
    return Judgement(
        feasible,
        [figures[goal.metric] for goal in goals],
        list(readings),
        [0.0, *violations],
        None if feasible else "constraint",
    )


def runs_to_reach(
    landscape: Landscape, seed: int, choice: SamplerChoice | None, target: Target, cap: int
) -> int:
    sampler = cell_sampler(landscape, seed, choice)
    search = sampler.search
    found = target.checker()
    noise = random.Random(seed)
    measured: dict[str, Judgement] = {}  # configuration -> its run's judgement
    repeats = 0
    for number in itertools.count():
        params, notes = sampler.ask(number)
        key = repr(sorted(params.items()))
        if key in measured:
            repeats += 1
            if repeats >= REPEATS_BEFORE_EXHAUSTED:
                return cap
        else:
            repeats = 0
            truth = landscape.evaluate(params)
            if found(truth):
                return len(measured) + 1
            if len(measured) + 1 >= cap:
                return cap
            noisy = (
                None
                if truth is None
                else {
                    metric: value * (1 + noise.gauss(0, NOISE)) for metric, value in truth.items()
                }
            )
            measured[key] = judgement(search, noisy)
        sampler.tell(number, params, notes, measured[key])
    raise AssertionError("unreachable")


def quantile(values: list[int], q: float) -> float:
    return float(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1])


_JOBS: list[Landscape] = []  # the landscapes, as a forked worker finds them


def _one(task: tuple[int, int, str, SamplerChoice, Target, int]) -> int:
    index, seed, label, choice, target, cap = task
    if not label.endswith(CATEGORICAL):
        return runs_to_reach(_JOBS[index], seed, choice, target, cap)
    ordered = sampler_module.ordered_values
    sampler_module.ordered_values = lambda dimension: None  # every list a categorical
    try:
        return runs_to_reach(_JOBS[index], seed, choice, target, cap)
    finally:
        sampler_module.ordered_values = ordered


def _settings(choice: SamplerChoice) -> tuple[str, int, bool]:
    return choice.kind, choice.startup, choice.no_repeats


def compare(landscapes: list[Landscape], seeds: int, cap: int, jobs: int) -> None:
    gp = gp_installed()
    print(
        f"Runs until a configuration truly within {WITHIN:.0%} of the true feasible optimum has"
        f" run (several objectives: one within {WITHIN:.0%} of each point of the true front)"
        f"\n({seeds} seeds; {NOISE:.0%} multiplicative noise per run; cap {cap} runs, a "
        f"capped search counts as the cap; GP sampler installed: {gp})\n"
    )
    print(
        f"{'landscape':18s} {'points':>6s} {'sampler':18s} {'median':>6s} {'p90':>6s} "
        f"{'max':>4s} {'capped':>6s} {'s/search':>8s}"
    )
    _JOBS[:] = landscapes
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for index, landscape in enumerate(landscapes):
            target = Target.of(landscape)
            _, search = search_config(landscape, 0)
            size = search.space_size()
            picked = choose_sampler(search, list(search.space.values()))
            table = CANDIDATES if len(search.goals) == 1 else MULTI_CANDIDATES
            candidates = [(label, c) for label, c in table if gp or c.kind != "gp"]
            same = next(
                (
                    label
                    for label, c in candidates
                    if _settings(c) == _settings(picked) and not label.endswith(CATEGORICAL)
                ),
                None,
            )
            print(f"{landscape.name}: {target.describe()}; {picked.reason}")
            results: dict[str, tuple[list[int], float]] = {}
            for label, choice in [*candidates, ("auto", picked)]:
                if label == "auto" and same is not None:
                    counts, spent = results[same]
                    label = f"auto = {same}"
                else:
                    started = time.perf_counter()
                    tasks = [(index, seed, label, choice, target, cap) for seed in range(seeds)]
                    counts = pool.map(_one, tasks)
                    spent = (time.perf_counter() - started) * jobs / seeds
                    results[label] = counts, spent
                capped = sum(count >= cap for count in counts)
                print(
                    f"{landscape.name:18s} {size or 0:6d} {label:18s} "
                    f"{statistics.median(counts):6.1f} {quantile(counts, 0.9):6.1f} "
                    f"{max(counts):4d} {capped:3d}/{seeds:<2d} {spent:8.2f}",
                    flush=True,
                )
            print()


def ask_cost(sizes: list[int]) -> None:
    """The GP sampler's own time to suggest one trial after n told ones (a fresh fit each
    ask, as the search makes it), on the 6-D landscape; TPE's for scale."""
    print("The sampler's own time per ask after n told trials (mixed-6d, median of 3 asks), s")
    print(f"{'n':>5s} {'gp':>8s} {'tpe':>8s}")
    landscape = MIXED_6D
    for n in sizes:
        row = []
        for kind in ("gp", "tpe"):
            spent = []
            for number in range(n, n + 3):
                sampler = cell_sampler(landscape, 0, SamplerChoice(kind, startup=5))  # type: ignore[arg-type]
                draw = random.Random(number)
                for told in range(n):
                    params = {k: draw.choice(v) for k, v in landscape.space.items()}
                    sampler.tell(
                        told, params, {}, judgement(sampler.search, landscape.evaluate(params))
                    )
                started = time.perf_counter()
                sampler.ask(number)
                spent.append(time.perf_counter() - started)
            row.append(statistics.median(spent))
        print(f"{n:5d} {row[0]:8.3f} {row[1]:8.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--cap", type=int, default=150)
    parser.add_argument("--only", nargs="*", help="landscape names to run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="searches at once (processes)")
    parser.add_argument(
        "--cost",
        type=int,
        nargs="*",
        default=[25, 50, 100, 200, 400],
        help="told trials at which to time one ask ([] to skip)",
    )
    args = parser.parse_args()
    landscapes = BUILT_IN + landscape_modules()
    if args.only:
        landscapes = [land for land in landscapes if land.name in args.only]
    compare(landscapes, args.seeds, args.cap, args.jobs)
    if args.cost:
        ask_cost(args.cost)


if __name__ == "__main__":
    main()
