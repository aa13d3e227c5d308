"""The two tables a study yields: one row per run, and one row per configuration over cycles."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llenergymeasure.results.cells import missing
from llenergymeasure.results.flatten import ID_COLUMNS, cell, reason_column, run_rows
from llenergymeasure.results.load import StudyData
from llenergymeasure.results.metrics import CATALOGUE, CV_FLAGGED, Metric
from llenergymeasure.results.stats import CV_FLAG_PCT, scaled_uncertainties, with_instrument
from llenergymeasure.results.validity import row_validity

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
        return INVALID_OUTCOME if (runs["outcome"] == INVALID_OUTCOME).any() else "no completed run"
    column = reason_column(metric)
    if column not in completed.columns:
        return "not reported"
    reasons = sorted({str(r) for r in completed[column].dropna() if str(r)})
    return "; ".join(reasons) if reasons else "not reported"


INVALID_OUTCOME = "excluded: GPU energy not valid (--valid-only)"


def energy_validity(runs: pd.DataFrame) -> pd.Series:
    """Each completed row's GPU energy judged (`validity.row_validity`); None for the rest."""
    if runs.empty:
        return pd.Series([], index=runs.index, dtype=object)
    judged = runs["outcome"].isin(("completed", INVALID_OUTCOME))
    return pd.Series(
        [
            row_validity(row) if keep else None
            for row, keep in zip(runs.to_dict("records"), judged, strict=True)
        ],
        index=runs.index,
        dtype=object,
    )


def summary_frame(
    study: StudyData, runs: pd.DataFrame | None = None, valid_only: bool = False
) -> pd.DataFrame:
    """One row per configuration (per configuration and stage where it ran stages): counts,
    validity, then n/mean/std/CI/CV for each key metric; `valid_only`: the runs whose GPU
    energy is not valid are left out of the statistics and counted as such (`results.validity`
    says what that leaves out and keeps)."""
    runs = runs_frame(study) if runs is None else runs
    if valid_only:
        runs = runs.copy()
        not_valid = [v is not None and v.not_valid for v in energy_validity(runs)]
        runs.loc[not_valid, "outcome"] = INVALID_OUTCOME
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
        row["runs_failed"] = int((~outcomes.isin((*NOT_FAILED, INVALID_OUTCOME))).sum())
        row.update(_validity(group))
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


def _validity(group: pd.DataFrame) -> dict[str, Any]:
    """Completed runs whose GPU energy is valid, of those judged (valid or not: read and
    judged), the runs without a verdict, and the codes of those not valid."""
    judged = [v for v in energy_validity(group) if v is not None]
    invalid = [v for v in judged if v.not_valid]
    return {
        "runs_valid": sum(v.verdict == "valid" for v in judged),
        "runs_judged": sum(v.verdict != "no_verdict" for v in judged),
        "runs_no_verdict": sum(v.verdict == "no_verdict" for v in judged),
        "invalid_reasons": ",".join(sorted({code for v in invalid for code in v.codes})),
    }


def metric_summaries(group: pd.DataFrame) -> dict[str, Any]:
    """`<metric>.<stat>` columns for one group of runs; CI columns are the 95 % bootstrap CI,
    an energy metric's widened by the instrument's uncertainty (`stats.with_instrument`)."""
    out: dict[str, Any] = {}
    completed = group[group["outcome"] == "completed"]
    for metric in CATALOGUE:
        values = completed[metric.column].tolist() if metric.column in completed.columns else []
        combined = with_instrument(values, _uncertainties(completed, metric))
        summary = combined.summary
        out.update(
            {
                f"{metric.column}.n": summary.n,
                f"{metric.column}.mean": summary.mean,
                f"{metric.column}.std": summary.std,
                f"{metric.column}.ci95_low": summary.ci_low,
                f"{metric.column}.ci95_high": summary.ci_high,
                f"{metric.column}.cv_pct": summary.cv_pct,
                f"{metric.column}.instrument_u": combined.instrument_u,
                f"{metric.column}.instrument_share_pct": combined.instrument_share_pct,
                f"{metric.column}.na_reason": (
                    na_reason(group, metric.column) if summary.n == 0 else None
                ),
            }
        )
    return out


def _uncertainties(runs: pd.DataFrame, metric: Metric) -> list[float | None]:
    """Each run's instrument uncertainty of `metric` (`stats.scaled_uncertainties`)."""
    if metric.column not in runs.columns:
        return []
    if metric.uncertainty is None or any(c not in runs.columns for c in metric.uncertainty):
        return [None] * len(runs)
    base, u = metric.uncertainty
    return scaled_uncertainties(
        *(
            [None if missing(x) else float(x) for x in runs[column]]
            for column in (metric.column, base, u)
        )
    )


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
