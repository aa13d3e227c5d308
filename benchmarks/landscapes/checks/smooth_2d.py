"""A smooth bowl of 20 x 20 = 400 configurations, two keys, no constraint: the easy case.

A quadratic with a tilted axis, its optimum inside the grid (13 prompts, 48 new tokens); five
configurations are within 5 % of it. Not a model of an engine: a check that the search does
not spend a large grid's worth of runs where the answer is easy.
"""

from __future__ import annotations

from typing import Any

SPACE: dict[str, Any] = {
    "n_prompts": list(range(1, 21)),
    "max_new_tokens": list(range(8, 161, 8)),
}
OBJECTIVE = {"minimize": "energy.j_per_output_token"}
CONSTRAINTS: list[str] = []


def evaluate(params: dict[str, Any]) -> dict[str, float] | None:
    u = (params["n_prompts"] - 13) / 6
    v = (params["max_new_tokens"] / 8 - 6) / 5
    return {"energy.j_per_output_token": 1 + u * u + v * v + 0.3 * u * v}
