"""Whether the search names the right winner, and at what cost in runs: the whole search as
documented, on simulated landscapes, through the real scheduler, collector and manifest (no
container), against plain Optuna TPE given the same runs.

The search. The README's example `search:` block (the first yaml block under "Searching instead
of sweeping", read from README.md, so this measures what users copy) with the landscape's
objective, constraints and space and its `SEARCH` overrides, its `seed` set per seed. It runs on
the simulated executor (tests/helpers/simulated.py): sampling, stop, re-measurement,
confirmation and verdict as `llem run` does them, read back with `search_view`.

A landscape (`--landscape PATH.py`, repeatable; default: the files in benchmarks/landscapes/,
not its checks/ folder)
defines `SPACE` (the search grammar's space: lists, or ranges with a step or of integers: a grid
a user would run), `OBJECTIVE`, `CONSTRAINTS` (optional), `SEARCH` (optional overrides of the
search block) and `evaluate(params) -> {catalogue metric: true value} | None` (None: the run
crashes). Each simulated run's figure is its true value x (1 + N(0, noise)), each metric drawn
on its own, seeded by (method, seed, run number).

The truth. Every point of SPACE evaluated without noise: feasible where evaluate() gives
figures and they meet every constraint; the true optimum is the best feasible objective. A
configuration is "within 5 %" where it is feasible and its true objective is within 5 %
(relative) of that optimum.

Plain TPE. `optuna.samplers.TPESampler(seed=seed)` with its defaults, asked and told one trial
at a time over the same space (lists categorical, ranges int or float with their step), told
the same noisy figures; constraints told with `trial.set_constraint` (what Optuna's deprecated
`constraints_func` became), a crash as infeasible. It runs as many trials as the search made
runs on that seed, confirmation included; its answer is its best measured feasible trial.

Per landscape: `grid` (configurations), `runs` and `confirm_runs` per search (median, p25, p75,
p90, max; `runs` counts every run: search, re-measurement, confirmation), `winner_within` (the
share of seeds whose named winner is within 5 %; no winner named: not within), `verdicts` (by
kind), `within_any` (the share of seeds whose search phase ran a configuration within 5 %: a
miss the confirmation made, or the search), and `plain_tpe` (its `winner_within`, `within_any`
and runs); with the seeds used and the wall time. A table per landscape, or with `--json` one
object: `{"noise", "seed", "seeds", "landscapes": {name: {those figures}}}`.

`--cost`: instead, the search's own cost per trial at 1,000 completed trials (asking: sampler,
configuration, manifest lines; telling: reading the result, judging it, the sampler's tell), a
200 x 200 integer space, the last 100 trials; target <= 50 ms per trial.

Run: python benchmarks/search_efficiency.py [--seeds 100] [--noise 0.03] [--seed 0]
     [--landscape PATH.py ...] [--json] | --cost [--trials 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import ValidationError
from ruamel.yaml import YAML

from llenergymeasure.config.search import Range, SearchConfig
from llenergymeasure.contract.backends import BACKENDS
from llenergymeasure.results.load import StudyData, load_study_results
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.search import search_view

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.results import Figures, figures_of  # noqa: E402
from helpers.simulated import search_run, search_study  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

README = ROOT / "README.md"
README_SECTION = "## Searching instead of sweeping"
LANDSCAPES = ROOT / "benchmarks" / "landscapes"
# the study folders: in memory where there is a tmpfs, as the manifest's fsyncs on a disk are
# not what this measures
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
WITHIN = 0.05
CRASH = "CUDA out of memory (simulated)"
VERDICT_KINDS = ("winner", "equivalent", "no_clear_winner", "none")
# keys of the README's block the landscape gives instead
LANDSCAPE_KEYS = ("objective", "objectives", "constraints", "space")

Params = dict[str, Any]
Evaluate = Callable[[Params], "dict[str, float] | None"]


def fail(message: str) -> SystemExit:
    return SystemExit(f"search_efficiency: {message}")


# the search block users copy ---------------------------------------------------------------


def readme_search(readme: Path = README) -> dict[str, Any]:
    """The `search:` block of the first yaml example under the README's search section."""
    text = readme.read_text(encoding="utf-8")
    start = text.find(README_SECTION)
    if start < 0:
        raise fail(f"{readme}: no section {README_SECTION!r}")
    end = text.find("\n## ", start + len(README_SECTION))
    section = text[start : end if end >= 0 else len(text)]
    block = re.search(r"^```yaml\n(.*?)^```", section, re.S | re.M)
    if block is None:
        raise fail(f"{readme}: no ```yaml block under {README_SECTION!r}")
    study = YAML(typ="safe").load(block[1])
    search = study.get("search") if isinstance(study, dict) else None
    if not isinstance(search, dict):
        raise fail(f"{readme}: the example under {README_SECTION!r} has no search: block")
    return {key: value for key, value in search.items() if key not in LANDSCAPE_KEYS}


# landscapes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landscape:
    name: str
    path: Path
    space: dict[str, Any]
    objective: dict[str, str]
    constraints: list[str]
    overrides: dict[str, Any]
    evaluate: Evaluate

    def search(self, base: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The search block a user would run on this landscape, with its seed."""
        return {
            **base,
            "objective": self.objective,
            "constraints": self.constraints,
            "space": self.space,
            **self.overrides,
            "seed": seed,
        }

    def defaults(self) -> dict[str, Any]:
        """The study's defaults its keys need: the backend whose section they name."""
        named = {key.split(".")[0] for key in self.space} & set(BACKENDS)
        if len(named) > 1:
            raise fail(f"{self.path}: SPACE names the sections of {sorted(named)}; one backend")
        return {"backend": named.pop()} if named else {}


def load_landscape(path: Path) -> Landscape:
    spec = importlib.util.spec_from_file_location(f"landscape_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise fail(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [name for name in ("SPACE", "OBJECTIVE", "evaluate") if not hasattr(module, name)]
    if missing:
        raise fail(f"{path}: defines no {', '.join(missing)}")
    return Landscape(
        name=path.stem,
        path=path,
        space=dict(module.SPACE),
        objective=dict(module.OBJECTIVE),
        constraints=list(getattr(module, "CONSTRAINTS", [])),
        overrides=dict(getattr(module, "SEARCH", {})),
        evaluate=module.evaluate,
    )


def search_config(landscape: Landscape, base: Mapping[str, Any], seed: int) -> SearchConfig:
    try:
        return SearchConfig.model_validate(landscape.search(base, seed))
    except ValidationError as error:
        raise fail(
            f"the README's search block on {landscape.path} is not a valid search: {error}"
        ) from None


def grid_of(search: SearchConfig) -> dict[str, list[Any]]:
    """Every value of each key: a list as given, a range by its step (or every integer)."""
    grid: dict[str, list[Any]] = {}
    for key, dimension in search.space.items():
        values = dimension.grid() if isinstance(dimension, Range) else list(dimension)
        if values is None:
            raise fail(f"{key}: a range without a step; a user's grid has lists or steps")
        grid[key] = values
    return grid


@dataclass
class Truth:
    """The landscape without noise: its feasible points, its optimum, what is within 5 %."""

    search: SearchConfig
    evaluate: Evaluate
    grid: int = 0
    feasible: int = 0
    optimum: float = math.nan
    best: Params = field(default_factory=dict)
    within_count: int = 0
    _seen: dict[str, tuple[float | None, bool]] = field(default_factory=dict)

    @classmethod
    def of(cls, search: SearchConfig, evaluate: Evaluate) -> Truth:
        truth = cls(search, evaluate)
        grid = grid_of(search)
        points = [
            dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
        ]
        goal = search.goals[0]
        for params in points:
            value, feasible = truth.value(params)
            if feasible and value is not None:
                truth.feasible += 1
                if not truth.best or goal.better(value, truth.optimum):
                    truth.optimum, truth.best = value, params
        if not truth.best:
            raise fail("no feasible point in SPACE: there is no optimum to find")
        truth.grid = len(points)
        truth.within_count = sum(truth.within(params) for params in points)
        return truth

    def value(self, params: Params) -> tuple[float | None, bool]:
        """The true objective and whether the point is feasible (cached)."""
        key = json.dumps(params, sort_keys=True)
        if key not in self._seen:
            self._seen[key] = self._judge(params)
        return self._seen[key]

    def _judge(self, params: Params) -> tuple[float | None, bool]:
        figures = self.evaluate(params)
        if figures is None:
            return None, False
        unknown = sorted(set(figures) - set(BY_COLUMN))
        if unknown:
            raise fail(f"evaluate() names metrics the catalogue lacks: {', '.join(unknown)}")
        needed = [m for m in self.search.metrics if m not in figures]
        if needed:
            raise fail(f"evaluate() gives no {', '.join(needed)}")
        met = all(c.met_by(figures[c.metric]) for c in self.search.constraints)
        return figures[self.search.goals[0].metric], met

    def within(self, params: Params | None) -> bool:
        if params is None:
            return False
        value, feasible = self.value(params)
        return (
            feasible
            and value is not None
            and abs(value - self.optimum) <= WITHIN * abs(self.optimum)
        )


def noisy(figures: Mapping[str, float], rng: random.Random, noise: float) -> dict[str, float]:
    return {name: value * (1 + rng.gauss(0.0, noise)) for name, value in figures.items()}


def run_rng(method: str, seed: int, run: int) -> random.Random:
    return random.Random(f"{method}:{seed}:{run}")


# one seed of the search --------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    runs: int
    confirm_runs: int
    winner_within: bool
    within_any: bool
    verdict: str = "none"


def search_seed(
    landscape: Landscape, truth: Truth, block: dict[str, Any], seed: int, noise: float
) -> Outcome:
    counter = itertools.count()

    def simulated(swept: Params) -> Figures | str:
        figures = landscape.evaluate(swept)
        rng = run_rng("llem", seed, next(counter))
        return CRASH if figures is None else figures_of(noisy(figures, rng, noise))

    study = search_study(block, defaults=landscape.defaults())
    with tempfile.TemporaryDirectory(prefix="llem-search-bench-", dir=SCRATCH) as folder:
        code = search_run(Path(folder), study, simulated).run()
        if code not in (0, 1):  # 1: no trial met every constraint, a finding (no winner)
            raise fail(f"{landscape.name}, seed {seed}: the search exited {code}")
        data = load_study_results(Path(folder) / "study")
    view = search_view(data)
    assert view is not None
    cell = view.cells[0]
    named = cell.winner.params if cell.winner is not None else None
    if not cell.confirmed:  # no confirmation (`confirm.top: 0`): the best trial is named
        best = cell.best_trial(view.search)
        named = best.params if best is not None else None
    ran = [t.params for t in cell.trials if t.run_id is not None]
    return Outcome(
        runs=runs_made(data),
        confirm_runs=cell.runs["confirmation"],
        winner_within=truth.within(named),
        within_any=any(truth.within(params) for params in ran),
        verdict=cell.verdict.kind,
    )


def runs_made(data: StudyData) -> int:
    """Every run the search started: trials, re-measurements, confirmation."""
    return sum(run.outcome not in ("pending", "running") for run in data.runs)


# one seed of plain TPE ---------------------------------------------------------------------


def distribution(dimension: Any) -> BaseDistribution:
    """A list: categorical; a range: integer or real, with its step or log scale."""
    if not isinstance(dimension, Range):
        return CategoricalDistribution(list(dimension))
    if dimension.integer:
        step = int(dimension.step or 1)
        return IntDistribution(
            int(dimension.low), int(dimension.high), log=dimension.log, step=step
        )
    return FloatDistribution(
        float(dimension.low), float(dimension.high), log=dimension.log, step=dimension.step
    )


def plain_tpe_seed(
    landscape: Landscape, truth: Truth, search: SearchConfig, seed: int, noise: float, runs: int
) -> tuple[bool, bool]:
    """(its answer is within 5 %, it ran a configuration within 5 %) after `runs` trials."""
    goal = search.goals[0]
    study = optuna.create_study(
        direction=goal.direction, sampler=optuna.samplers.TPESampler(seed=seed)
    )
    distributions = {key: distribution(dim) for key, dim in search.space.items()}
    answer: tuple[float, Params] | None = None
    within_any = False
    for run in range(runs):
        trial = study.ask(distributions)
        params = dict(trial.params)
        within_any = within_any or truth.within(params)
        true = landscape.evaluate(params)
        if true is None:  # a crash: infeasible, no figure
            trial.set_constraint("crashed", 1.0)
            for i in range(len(search.constraints)):
                trial.set_constraint(f"c{i}", 0.0)
            study.tell(trial, 0.0)
            continue
        measured = noisy(true, run_rng("tpe", seed, run), noise)
        trial.set_constraint("crashed", 0.0)
        violations = [c.violation(measured[c.metric]) for c in search.constraints]
        for i, violation in enumerate(violations):
            trial.set_constraint(f"c{i}", violation)
        value = measured[goal.metric]
        study.tell(trial, value)
        if all(v <= 0 for v in violations) and (answer is None or goal.better(value, answer[0])):
            answer = (value, params)
    return truth.within(answer[1] if answer else None), within_any


# the figures -------------------------------------------------------------------------------


def spread(values: list[int]) -> dict[str, float]:
    p25, p50, p75, p90 = np.percentile(values, [25, 50, 75, 90])
    return {
        "median": float(p50),
        "p25": float(p25),
        "p75": float(p75),
        "p90": float(p90),
        "max": float(max(values)),
    }


def share(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def bench_landscape(
    landscape: Landscape, base: dict[str, Any], seeds: list[int], noise: float
) -> dict[str, Any]:
    started = time.perf_counter()
    first = search_config(landscape, base, seeds[0])
    truth = Truth.of(first, landscape.evaluate)
    outcomes: list[Outcome] = []
    tpe: list[tuple[bool, bool]] = []
    llem_s = tpe_s = 0.0
    for seed in seeds:
        block = landscape.search(base, seed)
        at = time.perf_counter()
        outcome = search_seed(landscape, truth, block, seed, noise)
        llem_s += time.perf_counter() - at
        at = time.perf_counter()
        search = search_config(landscape, base, seed)
        tpe.append(plain_tpe_seed(landscape, truth, search, seed, noise, outcome.runs))
        tpe_s += time.perf_counter() - at
        outcomes.append(outcome)
    runs = [o.runs for o in outcomes]
    kinds = Counter(o.verdict for o in outcomes)
    return {
        "path": str(landscape.path),
        "seeds": {"first": seeds[0], "last": seeds[-1], "count": len(seeds)},
        "search": {
            key: value
            for key, value in first.model_dump(mode="json").items()
            if key not in (*LANDSCAPE_KEYS, "seed")
        },
        "grid": truth.grid,
        "feasible": truth.feasible,
        "within_5pct": truth.within_count,
        "optimum": {"value": truth.optimum, "params": truth.best},
        "runs": spread(runs),
        "confirm_runs": spread([o.confirm_runs for o in outcomes]),
        "winner_within": share([o.winner_within for o in outcomes]),
        "within_any": share([o.within_any for o in outcomes]),
        "verdicts": {kind: kinds.get(kind, 0) for kind in [*VERDICT_KINDS, *sorted(kinds)]},
        "plain_tpe": {
            "winner_within": share([answer for answer, _ in tpe]),
            "within_any": share([ran for _, ran in tpe]),
            "runs": spread(runs),
        },
        "wall_s": {
            "total": time.perf_counter() - started,
            "per_search": llem_s / len(seeds),
            "per_plain_tpe": tpe_s / len(seeds),
        },
    }


def show(name: str, figures: dict[str, Any], noise: float) -> None:
    seeds = figures["seeds"]
    optimum = figures["optimum"]
    best = ", ".join(f"{key}={_short(value)}" for key, value in optimum["params"].items())
    print(f"{name}  ({figures['path']})")
    print(
        f"  grid {figures['grid']} configurations, {figures['feasible']} feasible, "
        f"{figures['within_5pct']} within 5 % of the true optimum {optimum['value']:.4g} "
        f"({best})"
    )
    print(
        f"  seeds {seeds['first']}..{seeds['last']} ({seeds['count']}), noise "
        f"{noise:.1%} per run and metric"
    )
    for label, key in (("runs per search", "runs"), ("  of them confirmation", "confirm_runs")):
        s = figures[key]
        print(
            f"  {label:24s} median {s['median']:5.1f}  p25 {s['p25']:5.1f}  p75 {s['p75']:5.1f}"
            f"  p90 {s['p90']:5.1f}  max {s['max']:5.0f}"
        )
    tpe = figures["plain_tpe"]
    print(f"  {'':24s} {'llem search':>12s} {'plain TPE':>10s}   (same runs per seed)")
    print(
        f"  {'winner within 5 %':24s} {figures['winner_within']:12.0%} {tpe['winner_within']:10.0%}"
    )
    print(f"  {'ran one within 5 %':24s} {figures['within_any']:12.0%} {tpe['within_any']:10.0%}")
    verdicts = ", ".join(f"{kind} {n}" for kind, n in figures["verdicts"].items())
    print(f"  verdicts: {verdicts}")
    wall = figures["wall_s"]
    print(
        f"  wall {wall['total']:.1f} s ({wall['per_search']:.2f} s per search, "
        f"{wall['per_plain_tpe']:.2f} s per plain TPE)\n"
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def efficiency(paths: list[Path], seeds: int, base_seed: int, noise: float, as_json: bool) -> None:
    base = readme_search()
    landscapes = [load_landscape(path) for path in paths]
    names = [landscape.name for landscape in landscapes]
    if len(set(names)) != len(names):
        raise fail(f"two landscapes share a name: {names}")
    seed_list = list(range(base_seed, base_seed + seeds))
    if not as_json:
        search = ", ".join(f"{key}: {value}" for key, value in base.items() if key != "seed")
        print(f"The README's search block ({search}), its seed per seed; within = 5 %\n")
    out: dict[str, Any] = {"noise": noise, "seed": base_seed, "seeds": seeds, "landscapes": {}}
    for landscape in landscapes:
        figures = bench_landscape(landscape, base, seed_list, noise)
        out["landscapes"][landscape.name] = figures
        if not as_json:
            show(landscape.name, figures, noise)
    if as_json:
        print(json.dumps(out, indent=2))


# --cost ------------------------------------------------------------------------------------


def cost(trials: int) -> None:
    print(f"The search's own cost per trial at {trials:,} completed trials")

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
        f"{1000 * float(np.median(last)):.1f} ms, max {1000 * max(last):.1f} ms "
        "(target <= 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--landscape",
        type=Path,
        action="append",
        metavar="PATH.py",
        help="a landscape file (repeatable); default: benchmarks/landscapes/*.py",
    )
    parser.add_argument("--seeds", type=int, default=100, help="searches per landscape")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (seed k: this + k)")
    parser.add_argument("--noise", type=float, default=0.03, help="relative noise per run, std")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cost", action="store_true", help="the search's own cost per trial")
    parser.add_argument("--trials", type=int, default=1000, help="--cost: completed trials")
    args = parser.parse_args()
    if args.cost:
        cost(args.trials)
        return
    if args.seeds < 1 or args.noise < 0:
        raise fail("--seeds must be at least 1 and --noise not negative")
    paths = args.landscape or sorted(LANDSCAPES.glob("*.py"))
    efficiency(paths, args.seeds, args.seed, args.noise, args.json)


if __name__ == "__main__":
    main()
