"""What a reviewer asks of a study's energy figures: which runs' figures are not valid and why,
and how the NVML counter compared with the power integral over the same windows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from llenergymeasure.results.tables import VALID

RATIO = "energy.counter_integral_ratio"
INSTRUMENT_SHARE_NOTE_PCT = 100 / 3  # a CI more than a third instrument gets a footnote


@dataclass(frozen=True)
class InvalidRun:
    run_id: str
    stage: int | None
    reasons: str  # "code: detail; ..."
    codes: tuple[str, ...]

    @property
    def measured(self) -> bool:
        """Its energy was read (and judged not valid), not merely missing."""
        return self.codes != ("energy_unavailable",)


def invalid_runs(runs: pd.DataFrame) -> list[InvalidRun]:
    """Completed runs (stages) whose GPU energy is not valid, with every reason."""
    if VALID not in runs.columns:
        return []
    bad = runs[(runs["outcome"] == "completed") & (runs[VALID] != True)]  # noqa: E712
    stage = "stage" in bad.columns
    return [
        InvalidRun(
            str(row["run_id"]),
            int(row["stage"]) if stage and pd.notna(row["stage"]) else None,
            str(row["energy.validity.detail"]),
            tuple(str(row["energy.validity.reasons"]).split(",")),
        )
        for _, row in bad.iterrows()
    ]


def counter_integral_line(runs: pd.DataFrame) -> str | None:
    """The distribution of counter / integral over the study's GPU windows, in one line."""
    if RATIO not in runs.columns:
        return None
    ratios = runs.loc[runs["outcome"] == "completed", RATIO].dropna().astype(float)
    if ratios.empty:
        return None
    return (
        f"NVML energy counter / power integral over the same window: median "
        f"{ratios.median():.4f}, range {ratios.min():.4f}-{ratios.max():.4f} over "
        f"{len(ratios)} GPU window(s)"
    )
