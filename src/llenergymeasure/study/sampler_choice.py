"""Which Optuna sampler a cell's search uses, and with which settings: `sampler: auto` decides
by the space's shape (`choose_sampler`, its rule and its figures in its docstring); a named
sampler is that one, with the settings the same figures chose for it.

`gp` needs torch on the host (its CPU build is enough), which the default install leaves out
(`pip install 'llenergymeasure[search]'`; scipy, which it needs too, is a dependency): where
it is not installed `auto` takes TPE and says so, and a named `gp` is a UserError at
planning. The host never imports torch itself: Optuna's GP sampler loads it when it first fits.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llenergymeasure.config.search import Range, SearchConfig
from llenergymeasure.errors import UserError

SamplerKind = Literal["tpe", "gp", "nsga2", "random", "grid"]
GP_MODULES = ("torch", "scipy")  # what Optuna's GP sampler imports beyond Optuna's own needs
GP_EXTRA = "llenergymeasure[search]"
GP_MAX_KEYS = 6  # the most searched keys the figures cover (mixed-6d)
GP_MAX_TRIALS = 200  # above, a GP ask (a fresh fit over every trial) takes seconds
FEW_KEYS = 4  # up to this many keys the GP starts after 5 random trials, else 10


@dataclass(frozen=True)
class SamplerChoice:
    """A cell's sampler: which, its random start, and why (what `llem plan` shows)."""

    kind: SamplerKind
    startup: int = 10  # trials drawn at random before the model is used (tpe, gp)
    no_repeats: bool = True  # gp: its suggestion of a point already asked: a random one
    reason: str = "named in search.sampler"


def ordered_values(dimension: Any) -> list[int | float] | None:
    """A searched list whose values are all numbers (booleans are not), sorted by value: the
    sampler sees it as an ordinal (its indices 0..n-1), so neighbours are near; None for a
    range or a list of anything else (a categorical, no order)."""
    if isinstance(dimension, Range) or not all(
        isinstance(value, int | float) and not isinstance(value, bool) for value in dimension
    ):
        return None
    return sorted(dimension)


def gp_installed() -> bool:
    """Whether Optuna's GP sampler can run here: torch and scipy importable (looked up, not
    imported)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in GP_MODULES)
    except (ImportError, ValueError):  # a broken install, or a module without a spec
        return False


def startup_trials(kind: SamplerKind, keys: int) -> int:
    """Random trials before the model: GP 5 up to FEW_KEYS keys (2 to 4 keys: as good as
    Optuna's 10 or better, cat-oom-4d p90 27 runs against 35), 10 above (6 keys: p90 42
    against 74); TPE Optuna's 10 (5 gave a worse p90 on six of seven landscapes)."""
    if kind == "gp" and keys <= FEW_KEYS:
        return 5
    return 10


def choose_sampler(
    search: SearchConfig, dimensions: Sequence[Any], gp: bool | None = None
) -> SamplerChoice:
    """The sampler of a cell whose searched keys have `dimensions`; `gp`: whether the GP
    sampler can run here (default: looked up).

    `auto`, in this order:
      1. Several objectives: TPE (GP and NSGA-II never covered the front, below).
      2. GP not installed: TPE (and the reason says what to install).
      3. More than GP_MAX_KEYS keys: TPE (the figures go up to 6 keys; a GP's fit and its
         acquisition search grow with the dimensions).
      4. More than GP_MAX_TRIALS trials: TPE (the GP is refitted over every trial at each ask:
         0.16 s at 50 trials, 0.5 s at 200, 1.9 s at 400 on a 2-core host; TPE < 0.01 s).
      5. Otherwise GP, whatever the keys' kinds (ranges, lists of numbers, categoricals),
         with constraints and runs out of memory alike: its median was the lowest on five of
         the six landscapes below (constr-3d: 15.5 against TPE-as-before's 14.5, with a lower
         p90) and its p90 the lowest on four (on the two vllm ones within 1.1 runs of TPE's).

    The figures (benchmarks/search_samplers.py, 20 seeds, 3 % noise; runs until a
    configuration truly within 5 % of the true feasible optimum has run, median / p90):

        landscape               points  TPE as before  TPE      GP (auto)   random
        smooth-2d                  400   18 / 46       16 / 29   9 / 10     31 / 132
        constr-3d (constraint)     240   14.5 / 26     22.5 / 33 15.5 / 22  39 / 110
        cat-oom-4d (categ., OOM)   864   37 / 60       35 / 60   21 / 27    capped 11/20
        mixed-6d (2 categ., OOM)  8640   45.5 / 86     58 / 90   34.5 / 42  capped 17/20
        vllm_batch_memory          345   18 / 31       13 / 15   10 / 16    13 / 36
        vllm_precision_oom         240   9.5 / 21      12.5 / 16 9 / 17     18 / 43

    ("TPE as before": every list a categorical; "TPE": lists of numbers as ordinals, as now.)
    With two objectives (pareto-3d: runs until each point of the true front has a run within
    5 % of it) TPE took 67 / 87 (as before: 105 / 123); GP, NSGA-II (its first generation is
    50 random trials) and random search had not covered the front at the cap of 150 runs in
    20, 18 and 20 searches of 20.

    A named sampler is that one, with its startup_trials."""
    keys = len(dimensions)
    if search.sampler != "auto":
        return SamplerChoice(search.sampler, startup_trials(search.sampler, keys))
    if gp is None:
        gp = gp_installed()
    if len(search.goals) > 1:
        reason = "auto: tpe for several objectives"
    elif not gp:
        reason = f"auto: tpe, as gp needs torch (pip install '{GP_EXTRA}')"
    elif keys > GP_MAX_KEYS:
        reason = f"auto: tpe for {_keys(keys)} (gp up to {GP_MAX_KEYS})"
    elif search.trials > GP_MAX_TRIALS:
        reason = f"auto: tpe for {search.trials} trials (gp up to {GP_MAX_TRIALS})"
    else:
        return SamplerChoice("gp", startup_trials("gp", keys), reason=f"auto: gp for {_keys(keys)}")
    return SamplerChoice("tpe", startup_trials("tpe", keys), reason=reason)


def _keys(count: int) -> str:
    return f"{count} key" if count == 1 else f"{count} keys"


def sampler_text(search: SearchConfig) -> str:
    """The sampler as `llem plan` shows it: the one named, or what `auto` takes and why."""
    if search.sampler != "auto":
        return search.sampler
    return choose_sampler(search, list(search.space.values())).reason


def sampler_note(search: SearchConfig) -> str | None:
    """Once per search, where `auto` would take GP but cannot here: what to install."""
    if search.sampler != "auto" or gp_installed():
        return None
    wanted = choose_sampler(search, list(search.space.values()), gp=True)
    if wanted.kind != "gp":
        return None
    return (
        f"search: sampler auto takes tpe here; gp, better on this space's shape, needs torch: "
        f"pip install '{GP_EXTRA}'"
    )


def check_sampler(search: SearchConfig, where: Any) -> None:
    """Planning: `sampler: gp` where torch is not installed is a UserError naming the extra."""
    if search.sampler == "gp" and not gp_installed():
        path = "search.sampler"
        raise UserError(
            f"{where(path)}: {path}: gp needs torch (its CPU build is enough) on this host; "
            "the default install leaves it out",
            hint=f"pip install '{GP_EXTRA}' (torch's CPU wheel first, as for development), "
            "or use sampler: auto or tpe",
        )
