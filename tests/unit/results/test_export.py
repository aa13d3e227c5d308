"""Exports: CSV cells a spreadsheet would run are inert."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.results import Figures, pytorch_config, write_study
from llenergymeasure.results.export import write_study_outputs
from llenergymeasure.study.folder import StudyPaths


def test_csv_cells_a_spreadsheet_would_run_are_inert(tmp_path: Path) -> None:
    configs = [({"pytorch.batch_size": 1}, pytorch_config(1, model='=HYPERLINK("x")'))]
    hostile = '=cmd|" /C calc"!A0'
    study = write_study(
        tmp_path, configs, 2, lambda ci, cy: hostile if cy else Figures(tokens_per_s=1.0)
    )
    write_study_outputs(study)
    frame = pd.read_csv(study / StudyPaths.RESULTS_CSV)
    assert set(frame["error"].dropna()) == {"'" + hostile}
    assert not any(str(cell).startswith(("=", "+", "@")) for cell in frame.to_numpy().ravel())
    numbers = [c for c in frame.columns if c.endswith("tokens_per_s")]
    assert numbers and all(frame[c].dtype.kind == "f" for c in numbers)  # numbers stay numbers
