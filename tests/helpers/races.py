"""Searches whose races end in known ways, run on the simulated executor: every point of a small
space is tried (so which configurations are raced does not depend on the sampler's order), and
each run's figures carry a small seeded noise, so the race's pooled spread is not zero."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from helpers.results import Figures
from helpers.simulated import Landscape, search_run, search_study

NOISE = 0.005  # relative, at most
SPACE = {"n_prompts": {"low": 1, "high": 6}}
J_PER_TOKEN = "energy.j_per_output_token"

# n_prompts -> J/token. The best three are raced: 4 leads, 3 is 1 % worse (within the 5 %
# margin once two runs each have narrowed it), 5 is 30 % worse (eliminated).
SETTLED = {1: 2.0, 2: 1.5, 3: 1.01, 4: 1.0, 5: 1.3, 6: 1.4}
# The best two are raced on runs 8 % apart at most: 5 is 2 % worse than 4, and the 4 runs the
# race may make cannot bound it from beating 4 by more than the margin.
UNDECIDED = {1: 2.0, 2: 1.5, 3: 1.2, 4: 1.0, 5: 1.02, 6: 1.3}
UNDECIDED_NOISE = 0.08
# n_prompts -> (J/token, tok/s): 4 and 3 are within the margin of each other on both; 2 trades
# energy for speed.
TRADE_OFF = {
    1: (2.0, 50.0),
    2: (1.3, 200.0),
    3: (1.01, 101.0),
    4: (1.0, 100.0),
    5: (1.6, 60.0),
    6: (1.8, 70.0),
}


def noisy(figures: dict[int, tuple[float, float]], noise: float = NOISE) -> Landscape:
    """A landscape of `figures` (n_prompts -> (J/token, tok/s)), each run's off by up to
    `noise`, a deterministic pseudo-random of how many runs came before it."""
    calls = itertools.count()

    def landscape(swept: dict[str, Any]) -> Figures:
        wobble = ((next(calls) * 7919) % 13 - 6) / 6  # in [-1, 1]
        j, speed = figures[swept["n_prompts"]]
        return Figures(
            tokens_per_s=speed * (1 - noise * wobble), j_per_token=j * (1 + noise * wobble)
        )

    return landscape


def raced(root: Path, kind: str) -> Path:
    """The study folder of a search whose race ends `kind`: settled (a winner, one candidate
    within the margin, one eliminated), undecided (the race's budget spent first) or
    trade_off (two objectives)."""
    search: dict[str, Any] = {"space": SPACE, "trials": 6, "sampler": "grid"}
    noise = UNDECIDED_NOISE if kind == "undecided" else NOISE
    if kind == "settled":
        search |= {"objective": {"minimize": J_PER_TOKEN}, "confirm": {"top": 3}}
        figures = {n: (j, 100.0) for n, j in SETTLED.items()}
    elif kind == "undecided":
        search |= {"objective": {"minimize": J_PER_TOKEN}, "confirm": {"top": 2, "max_runs": 4}}
        figures = {n: (j, 100.0) for n, j in UNDECIDED.items()}
    else:
        search |= {
            "objectives": [
                {"minimize": J_PER_TOKEN},
                {"maximize": "throughput.output_tokens_per_s"},
            ],
            "confirm": {"top": 3},
        }
        figures = TRADE_OFF
    assert search_run(root, search_study(search), noisy(figures, noise)).run() == 0
    return root / "study"
