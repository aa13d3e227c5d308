"""Files a study leaves: results.parquet, results.csv, summary.csv; and on-demand exports."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import pandas as pd

from llenergymeasure.contract.workdir import atomic_write_bytes, atomic_write_text
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.search import search_view
from llenergymeasure.results.tables import runs_frame, summary_frame
from llenergymeasure.results.trials import trials_frame
from llenergymeasure.study.folder import StudyPaths

ExportFormat = Literal["csv", "parquet", "json"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet", "json")


def write_study_outputs(study_dir: Path) -> list[Path]:
    """Write results.parquet, results.csv and summary.csv into the study folder (a search:
    and trials.csv).

    Safe to call at any time (at study end, or again later): failed and pending runs are rows
    too, so a study with no completed run still gets its tables. Returns the paths written.
    """
    study_dir = Path(study_dir)
    study = load_study_results(study_dir)
    runs = runs_frame(study)
    summary = summary_frame(study, runs)
    written = [
        write_frame(runs, study_dir / StudyPaths.RESULTS_PARQUET, "parquet"),
        write_frame(runs, study_dir / StudyPaths.RESULTS_CSV, "csv"),
        write_frame(summary, study_dir / StudyPaths.SUMMARY_CSV, "csv"),
    ]
    view = search_view(study)
    if view is not None:
        written.append(write_frame(trials_frame(view), study_dir / StudyPaths.TRIALS_CSV, "csv"))
    return written


def write_frame(frame: pd.DataFrame, path: Path, fmt: ExportFormat) -> Path:
    """Write atomically (`atomic_write_bytes`): a reader sees the old file or the whole new
    one, and nothing planted in the folder is written through."""
    path = Path(path)
    if fmt == "parquet":  # into memory, then written like any file (never a fixed temp name)
        buffer = io.BytesIO()
        _parquet_safe(frame).to_parquet(buffer, index=False, engine="pyarrow")
        atomic_write_bytes(path, buffer.getvalue())
        return path
    if fmt == "csv":
        buffer = io.StringIO()
        _inert(frame).to_csv(buffer, index=False)
        atomic_write_text(path, buffer.getvalue())
    else:
        atomic_write_text(path, frame.to_json(orient="records", indent=2, double_precision=15))
    return path


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): text from a container or a
# study file (an error message, a model name) may start so.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that start like a formula get a leading `'`; numbers stay numbers."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(
                lambda v: f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            )
    return out


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: a swept key whose values mix types becomes text."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object and pd.api.types.infer_dtype(out[column]).startswith(
            "mixed"
        ):
            out[column] = out[column].map(lambda v: None if pd.isna(v) else str(v))
    return out
