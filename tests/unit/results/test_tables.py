"""Per-run and per-configuration tables, and the files a study leaves."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from helpers.results import (
    NO_ENERGY,
    OOM,
    Figures,
    cpu_study,
    pytorch_config,
    standard_study,
    write_study,
)
from llenergymeasure.errors import UserError
from llenergymeasure.results.export import write_study_outputs
from llenergymeasure.results.load import load_study_results, require_results
from llenergymeasure.results.tables import runs_frame, summary_frame


def test_runs_frame_has_one_row_per_planned_run_with_ids_swept_and_outcome(
    tmp_path: Path,
) -> None:
    runs = runs_frame(load_study_results(standard_study(tmp_path)))
    assert len(runs) == 6
    assert list(runs["cycle"]) == [0, 0, 1, 1, 2, 2]
    assert list(runs["pytorch.batch_size"]) == [1, 4, 1, 4, 1, 4]
    failed = runs[runs["outcome"] == "failed"]
    assert len(failed) == 1
    assert failed.iloc[0]["error"] == OOM
    assert pd.isna(failed.iloc[0]["energy.j_per_output_token"])
    assert runs["image_digest"].str.contains("@sha256:").all()
    completed = runs[runs["outcome"] == "completed"]
    assert completed["energy.j_per_output_token"].tolist() == pytest.approx(
        [0.5, 0.25, 0.51, 0.26, 0.52]
    )
    # Percentile metrics are flattened with their unit in the name.
    assert completed["latency.ttft_ms.p50"].tolist() == [20.0] * 5


def test_summary_over_cycles_has_known_statistics(tmp_path: Path) -> None:
    summary = summary_frame(load_study_results(standard_study(tmp_path))).set_index("config_index")
    first, second = summary.loc[0], summary.loc[1]
    assert first["energy.j_per_output_token.n"] == 3
    assert first["energy.j_per_output_token.mean"] == pytest.approx(0.51)
    assert first["energy.j_per_output_token.std"] == pytest.approx(0.01)
    assert first["energy.j_per_output_token.cv_pct"] == pytest.approx(0.01 / 0.51 * 100)
    assert first["throughput.output_tokens_per_s.mean"] == pytest.approx(101.0)
    low, high = (
        first["energy.j_per_output_token.ci95_low"],
        first["energy.j_per_output_token.ci95_high"],
    )
    # each run's instrument uncertainty is 0.5 % of its figure; the CI holds it
    u_mean = math.sqrt(sum((0.005 * v) ** 2 for v in (0.5, 0.51, 0.52))) / 3
    assert first["energy.j_per_output_token.instrument_u"] == pytest.approx(u_mean)
    assert 0.5 - 1.96 * u_mean <= low < 0.5 < 0.52 < high <= 0.52 + 1.96 * u_mean
    # The failed cycle is counted, and left out of the statistics.
    assert (second["runs_planned"], second["runs_completed"], second["runs_failed"]) == (3, 2, 1)
    assert second["energy.j_per_output_token.n"] == 2
    u_mean = math.sqrt((0.005 * 0.25) ** 2 + (0.005 * 0.26) ** 2) / 2
    widened = math.hypot(0.005, 1.959963984540054 * u_mean)
    assert second["energy.j_per_output_token.ci95_low"] == pytest.approx(0.255 - widened)
    assert second["energy.j_per_output_token.ci95_high"] == pytest.approx(0.255 + widened)
    # throughput has no instrument term: its CI is the bootstrap's alone
    assert pd.isna(second["throughput.output_tokens_per_s.instrument_u"])
    assert not first["cv_flagged"] and not second["cv_flagged"]


def test_configuration_with_cv_above_5_percent_is_flagged(tmp_path: Path) -> None:
    noisy = [100.0, 120.0, 80.0]  # CV of throughput 20 %
    study_dir = write_study(
        tmp_path,
        [({}, pytorch_config(1))],
        3,
        lambda ci, cy: Figures(tokens_per_s=noisy[cy], j_per_token=0.5),
    )
    row = summary_frame(load_study_results(study_dir)).iloc[0]
    assert row["throughput.output_tokens_per_s.cv_pct"] == pytest.approx(20.0)
    assert row["cv_flagged"]
    assert row["high_cv_metrics"] == "throughput.output_tokens_per_s"


def test_unmeasured_energy_is_null_with_the_runners_reason(tmp_path: Path) -> None:
    summary = summary_frame(load_study_results(cpu_study(tmp_path)))
    assert summary["energy.j_per_output_token.n"].tolist() == [0, 0]
    assert summary["energy.j_per_output_token.mean"].isna().all()
    assert summary["energy.j_per_output_token.na_reason"].tolist() == [NO_ENERGY, NO_ENERGY]
    assert summary["throughput.output_tokens_per_s.mean"].tolist() == [10.5, 20.5]


def test_pending_runs_are_neither_completed_nor_failed(tmp_path: Path) -> None:
    study_dir = write_study(
        tmp_path,
        [({}, pytorch_config(1))],
        3,
        lambda ci, cy: Figures(tokens_per_s=10.0, j_per_token=1.0) if cy == 0 else None,
    )
    row = summary_frame(load_study_results(study_dir)).iloc[0]
    assert (row["runs_completed"], row["runs_failed"]) == (1, 0)
    assert runs_frame(load_study_results(study_dir))["outcome"].tolist() == [
        "completed",
        "pending",
        "pending",
    ]


def test_write_study_outputs_round_trips(tmp_path: Path) -> None:
    study_dir = standard_study(tmp_path)
    paths = write_study_outputs(study_dir)
    assert sorted(p.name for p in paths) == ["results.csv", "results.parquet", "summary.csv"]
    parquet = pd.read_parquet(study_dir / "results.parquet")
    csv = pd.read_csv(study_dir / "results.csv")
    assert len(parquet) == len(csv) == 6
    assert list(parquet.columns) == list(csv.columns)
    assert parquet["energy.j_per_output_token"].sum() == pytest.approx(2.04)
    summary = pd.read_csv(study_dir / "summary.csv")
    assert summary["energy.j_per_output_token.mean"].tolist() == pytest.approx([0.51, 0.255])
    assert "cv_flagged" in summary.columns


def test_mixed_type_swept_values_still_write_parquet(tmp_path: Path) -> None:
    configs = [
        ({"pytorch.attn_implementation": None}, pytorch_config(1)),
        ({"pytorch.attn_implementation": "sdpa"}, pytorch_config(2)),
        ({"pytorch.attn_implementation": 3}, pytorch_config(3)),
    ]
    study_dir = write_study(
        tmp_path, configs, 1, lambda ci, cy: Figures(tokens_per_s=1.0, j_per_token=1.0)
    )
    write_study_outputs(study_dir)
    column = pd.read_parquet(study_dir / "results.parquet")["pytorch.attn_implementation"]
    assert pd.isna(column[0])
    assert column.tolist()[1:] == ["sdpa", "3"]


def test_not_a_study_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a study folder"):
        load_study_results(tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        load_study_results(tmp_path / "missing")


def test_no_results_yet_is_a_user_error(tmp_path: Path) -> None:
    study_dir = write_study(tmp_path, [({}, pytorch_config(1))], 2, lambda ci, cy: None)
    with pytest.raises(UserError, match=r"no results yet \(2 pending\)"):
        require_results(load_study_results(study_dir))


def test_schema_invalid_result_counts_as_a_failure(tmp_path: Path) -> None:
    study_dir = standard_study(tmp_path)
    result = next(study_dir.glob("experiments/*/result.json"))
    result.write_text('{"schema_version": 1}', encoding="utf-8")
    study = load_study_results(study_dir)
    broken = next(run for run in study.runs if run.work_dir == result.parent)
    assert broken.result is None
    assert "fails the result schema" in (broken.error or "")
    assert broken.outcome == "failed"
