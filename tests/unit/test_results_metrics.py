"""The metric catalogue: one row per metric, every view reads its selection from it."""

from __future__ import annotations

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.results.metrics import (
    BY_COLUMN,
    CATALOGUE,
    COMPARED,
    CV_FLAGGED,
    IN_REPORT,
    SHOWN,
)


def test_every_metric_is_a_result_field_with_a_unit_and_a_label() -> None:
    for metric in CATALOGUE:
        section, name, *rest = metric.column.split(".")
        model = ExperimentResult.model_fields[section].annotation
        assert name in model.model_fields, metric.column  # type: ignore[union-attr]
        assert metric.unit and metric.label, metric
        assert not rest or rest[0] in ("p50", "p90", "p99", "mean", "min", "max")
    assert len(BY_COLUMN) == len(CATALOGUE)  # no metric twice


def test_the_views_select_from_the_catalogue() -> None:
    assert [m.short for m in SHOWN] == ["J/out-token", "tok/s", "TTFT p50 ms", "ITL p50 ms"]
    assert COMPARED == CV_FLAGGED == tuple(m.column for m in SHOWN)
    assert IN_REPORT[0] == "energy.j_per_output_token" and len(IN_REPORT) == 7
    assert set(IN_REPORT) <= set(BY_COLUMN)
