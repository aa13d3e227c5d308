"""What a reviewer asks of a study's energy figures: which runs' figures are not valid and why,
and how the NVML counter compared with the power integral over the same windows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from llenergymeasure.results.tables import energy_validity
from llenergymeasure.results.validity import GpuEnergyValidity

RATIO = "energy.counter_integral_ratio"
INSTRUMENT_SHARE_NOTE_PCT = 100 / 3  # a CI more than a third instrument gets a footnote


@dataclass(frozen=True)
class RunValidity:
    """One completed run's (one stage's) GPU energy judged (`results.validity`)."""

    run_id: str
    stage: int | None
    validity: GpuEnergyValidity


@dataclass(frozen=True)
class ValidityAudit:
    """A study's completed runs (stages) by the verdict on their GPU energy."""

    not_valid: list[RunValidity]  # read, and judged not valid: with every reason
    not_measured: int  # no reading: the figures are null with their reason
    not_judged: int  # read, but recorded before llem judged validity


def validity_audit(runs: pd.DataFrame) -> ValidityAudit:
    judged = energy_validity(runs)
    stage = "stage" in runs.columns
    found = [
        RunValidity(
            str(row["run_id"]),
            int(row["stage"]) if stage and pd.notna(row["stage"]) else None,
            judged[index],
        )
        for index, row in runs.iterrows()
        if judged[index] is not None
    ]
    unjudged = [run.validity for run in found if run.validity.verdict == "no_verdict"]
    return ValidityAudit(
        not_valid=[run for run in found if run.validity.not_valid],
        not_measured=sum(not v.measured for v in unjudged),
        not_judged=sum(v.measured for v in unjudged),
    )


def valid_of_judged(row: pd.Series, separator: str = "/") -> str:
    """A configuration's "valid energy" cell (`tables.summary_frame`): runs valid of those
    judged, or that none was judged (no run read its GPU energy, or none was judged)."""
    if not row["runs_judged"]:
        return "no verdict"
    return f"{int(row['runs_valid'])}{separator}{int(row['runs_judged'])}"


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
