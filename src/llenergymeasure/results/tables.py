"""The two tables a study yields: one row per run, and one row per configuration over cycles."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llenergymeasure.results.flatten import ID_COLUMNS, cell, reason_column, run_rows
from llenergymeasure.results.load import StudyData
from llenergymeasure.results.metrics import CATALOGUE, CV_FLAGGED
from llenergymeasure.results.stats import CV_FLAG_PCT, summarise

NOT_FAILED = ("completed", "pending", "running")
# a staged serving run's row: which stage, at what settings (`flatten.run_rows`)
STAGE_COLUMNS = ("stage", "stage.request_rate", "stage.max_concurrency", "stage.outcome")


def runs_frame(study: StudyData) -> pd.DataFrame:
    """One row per planned run (per stage of a staged serving run), failed and pending ones
    included (metrics empty there)."""
    rows = [row for run in study.runs for row in run_rows(run, study.manifest.study_id)]
    frame = pd.DataFrame(rows)
    first = [
        *ID_COLUMNS,
        *(key for key in study.swept_keys if key not in ID_COLUMNS),
        *STAGE_COLUMNS,
    ]
    ordered = [column for column in first if column in frame.columns]
    return frame[ordered + [column for column in frame.columns if column not in ordered]]


def na_reason(runs: pd.DataFrame, metric: str) -> str | None:
    """Why a metric has no reading in these runs (the experiments' own reasons, de-duplicated)."""
    completed = runs[runs["outcome"] == "completed"]
    if completed.empty:
        return "no completed run"
    column = reason_column(metric)
    if column not in completed.columns:
        return "not reported"
    reasons = sorted({str(r) for r in completed[column].dropna() if str(r)})
    return "; ".join(reasons) if reasons else "not reported"


def summary_frame(study: StudyData, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per configuration (per configuration and stage where it ran stages): counts,
    then n/mean/std/CI/CV for each key metric."""
    runs = runs_frame(study) if runs is None else runs
    swept_by_config: dict[int, dict[str, Any]] = {}
    for run in study.runs:
        swept_by_config.setdefault(run.planned.config_index, run.planned.swept)
    staged = "stage" in runs.columns
    if staged:
        runs = _stages_to_summarise(runs)
    keys = ["config_index", "stage"] if staged else ["config_index"]
    rows = []
    for key_values, group in runs.groupby(keys, sort=True, dropna=False):
        config_index = key_values[0] if isinstance(key_values, tuple) else key_values
        first = group.iloc[0]
        row: dict[str, Any] = {
            "config_index": int(config_index),
            "config_hash": first["config_hash"],
            "backend": first["backend"],
            "model": first["model"],
        }
        for key, value in swept_by_config[int(config_index)].items():
            row.setdefault(key, cell(value))
        if staged:
            row.update({column: _stage_value(group, column) for column in STAGE_COLUMNS[:3]})
        outcomes = group["outcome"]
        row["runs_planned"] = len(group)
        row["runs_completed"] = int((outcomes == "completed").sum())
        row["runs_failed"] = int((~outcomes.isin(NOT_FAILED)).sum())
        row.update(metric_summaries(group))
        flagged = [
            metric
            for metric in CV_FLAGGED
            if row[f"{metric}.cv_pct"] is not None and row[f"{metric}.cv_pct"] > CV_FLAG_PCT
        ]
        row["cv_flagged"] = bool(flagged)
        row["high_cv_metrics"] = ",".join(flagged)
        rows.append(row)
    return pd.DataFrame(rows)


def metric_summaries(group: pd.DataFrame) -> dict[str, Any]:
    """`<metric>.<stat>` columns for one group of runs; CI columns are the 95 % bootstrap CI."""
    out: dict[str, Any] = {}
    completed = group[group["outcome"] == "completed"]
    for metric in CATALOGUE:
        values = completed[metric.column].tolist() if metric.column in completed.columns else []
        summary = summarise(values)
        out.update(
            {
                f"{metric.column}.n": summary.n,
                f"{metric.column}.mean": summary.mean,
                f"{metric.column}.std": summary.std,
                f"{metric.column}.ci95_low": summary.ci_low,
                f"{metric.column}.ci95_high": summary.ci_high,
                f"{metric.column}.cv_pct": summary.cv_pct,
                f"{metric.column}.na_reason": (
                    na_reason(group, metric.column) if summary.n == 0 else None
                ),
            }
        )
    return out


def _stage_value(group: pd.DataFrame, column: str) -> Any:
    """A stage column's value over a configuration's cycles (the first one not null)."""
    if column not in group.columns:
        return None
    values = group[column].dropna()
    if values.empty:
        return None
    value = values.iloc[0]
    return int(value) if column == "stage" else value


def _stages_to_summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """A stage list is summarised per stage over cycles; a find_max_rate run (whose probed
    rates differ from cycle to cycle) by its headline stage only: the figures at the rate it
    found, with that rate as a metric."""
    if "max_rate.probes" not in runs.columns:
        return runs
    searched = runs["max_rate.probes"].notna()
    kept = runs[~searched | (runs["stage.headline"] == True)].copy()  # noqa: E712 - a column
    found = kept["max_rate.probes"].notna()
    kept["stage"] = kept["stage"].astype("object")
    kept.loc[found, "stage"] = None
    for column in STAGE_COLUMNS[1:]:
        if column in kept.columns:
            kept[column] = kept[column].astype("object")
            kept.loc[found, column] = None
    return kept
