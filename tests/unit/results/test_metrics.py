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
    for_study,
)


def test_every_metric_is_a_result_field_with_a_unit_and_a_label() -> None:
    for metric in CATALOGUE:
        section, name, *rest = metric.column.split(".")
        annotation = ExperimentResult.model_fields[section].annotation
        model = next(a for a in getattr(annotation, "__args__", (annotation,)) if a is not None)
        assert name in model.model_fields, metric.column
        assert metric.unit and metric.label, metric
        assert not rest or rest[0] in ("p50", "p90", "p99", "mean", "min", "max")
    assert len(BY_COLUMN) == len(CATALOGUE)  # no metric twice


def test_the_views_select_from_the_catalogue() -> None:
    offline = for_study(SHOWN, serving=False)
    assert [m.short for m in offline] == ["J/out-token", "tok/s", "TTFT p50 ms", "ITL p50 ms"]
    assert tuple(m.column for m in offline) == CV_FLAGGED
    serving = [m.short for m in for_study(SHOWN, serving=True)]
    assert serving == [
        *(m.short for m in offline),
        "sent req/s",
        "req/s",  # completed in the window, beside goodput over the same window
        "goodput",
        "J/SLO-req",
        "max req/s",
    ]
    assert set(CV_FLAGGED) < set(COMPARED)
    assert IN_REPORT[0].column == "energy.j_per_output_token"
    assert len([m for m in IN_REPORT if not m.serving_only]) == 7
    assert {m.column for m in IN_REPORT} <= set(BY_COLUMN)
