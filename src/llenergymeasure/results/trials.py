"""A search's trial table: one row per trial the sampler asked for, in order, with its
searched values, state, objective and constraint readings, and the best feasible value so far.
`results show`, `results export --trials`, trials.csv and the report read it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llenergymeasure.results.flatten import cell
from llenergymeasure.results.search import SearchView

TRIAL_ID_COLUMNS = ("cell", "trial", "state", "run_id", "config_hash")
BEST_SO_FAR = "best_so_far"


def constraint_column(text: str) -> str:
    """The column of a constraint's reading: `constraint: latency.ttft_ms.p99 <= 200`."""
    return f"constraint: {text}"


def trials_frame(view: SearchView) -> pd.DataFrame:
    search = view.search
    keys = list(search.space)
    rows: list[dict[str, Any]] = []
    for cell_view in view.cells:
        best = cell_view.best_so_far(search) if len(search.goals) == 1 else None
        for position, trial in enumerate(cell_view.trials):
            row: dict[str, Any] = {
                "cell": trial.cell,
                "trial": trial.number,
                "state": trial.state,
                "run_id": trial.run_id,
                "config_hash": trial.config_hash,
            }
            row.update({key: cell(trial.params.get(key)) for key in keys})
            row.update(
                {goal.metric: value for goal, value in zip(search.goals, trial.values, strict=True)}
            )
            row.update(
                {
                    constraint_column(str(c)): value
                    for c, value in zip(search.constraints, trial.constraint_values, strict=True)
                }
            )
            if best is not None:
                row[BEST_SO_FAR] = best[position]
            row["reason"] = trial.reason
            rows.append(row)
    columns = [*TRIAL_ID_COLUMNS, *keys, *(g.metric for g in search.goals)]
    columns += [constraint_column(str(c)) for c in search.constraints]
    columns += [BEST_SO_FAR] if len(search.goals) == 1 else []
    return pd.DataFrame(rows, columns=[*columns, "reason"])
