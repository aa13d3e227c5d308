"""The happy path: a 3-run study on the real CPU image, the real experiment process, the tiny
offline model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.integration import llem, study_dirs, tiny_cpu_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_three_run_study_end_to_end(tmp_path, client):
    study = tiny_cpu_study(tmp_path, client, [1, 2, 4])
    proc = llem("run", str(study), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    assert record.status == "completed" and len(record.runs) == 3
    for run in record.runs.values():
        assert run.status == "completed" and run.image_id
        result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        assert result.context.run_id == run.run_id
        assert result.config.model.startswith("/llem/models/")  # local folder mounted read-only
        assert result.tokens.output_tokens > 0

    # The results path on the real experiment output: tables written at the study's end, then
    # shown, and reported as HTML.
    for name in ("results.parquet", "results.csv", "summary.csv"):
        assert (study_dir / name).is_file(), name
    runs = pd.read_parquet(study_dir / "results.parquet")
    assert len(runs) == 3 and set(runs["outcome"]) == {"completed"}
    assert sorted(runs["pytorch.batch_size"]) == [1, 2, 4]
    assert runs["energy.j_per_output_token"].isna().all()  # no GPU here: null, never 0
    shown = llem("results", "show", str(study_dir), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert len(rows) == 3 and all(row["runs_completed"] == 1 for row in rows)
    throughput = [row["metrics"]["throughput.output_tokens_per_s"]["mean"] for row in rows]
    assert all(value > 0 for value in throughput)
    energy = rows[0]["metrics"]["energy.j_per_output_token"]
    assert energy["mean"] is None and energy["na_reason"]
    report = llem("results", "report", str(study_dir), cwd=tmp_path, timeout=300)
    assert report.returncode == 0, report.stderr
    html = (study_dir / "report.html").read_text()
    assert "<img" in html and "sha256:" in html
