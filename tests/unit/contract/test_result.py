"""ExperimentResult rules: a null figure needs a reason; percentiles are ordered; versioned."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llenergymeasure.contract import RESULT_SCHEMA_VERSION, ExperimentConfig, ExperimentResult
from llenergymeasure.contract.result import Latency, Percentiles


def pct(value: float) -> Percentiles:
    return Percentiles(n=3, mean=value, p50=value, p90=value, p99=value, min=value, max=value)


def test_null_figure_needs_a_reason_and_a_measured_one_must_not_have_one() -> None:
    Latency(
        request_ms=pct(5), ttft_ms=pct(1), itl_ms=None, itl_ms_reason="no streaming", method="x"
    )
    with pytest.raises(ValidationError, match="needs a reason"):
        Latency(request_ms=pct(5), ttft_ms=None, itl_ms=pct(1), method="x")
    with pytest.raises(ValidationError, match="both set"):
        Latency(request_ms=pct(5), ttft_ms=pct(1), ttft_ms_reason="why", itl_ms=pct(1), method="x")


def test_percentiles_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="percentiles"):
        Percentiles(n=2, mean=1, p50=3, p90=2, p99=4, min=0, max=5)


def test_result_schema_is_versioned_and_every_figure_has_unit_or_description() -> None:
    assert RESULT_SCHEMA_VERSION >= 1
    assert "schema_version" in ExperimentResult.model_fields
    units = ("_s", "_ms", "_j", "_w", "_mb", "_c", "_mhz", "_pct", "_per_s", "_per_j", "_token")
    # Percentiles carry the unit of the field that holds them; the config holds settings.
    figures = (float, Percentiles)

    def check(model: type) -> None:
        for name, field in model.model_fields.items():
            inner_types = getattr(field.annotation, "__args__", (field.annotation,))
            if any(t in figures for t in inner_types):
                assert name.endswith(units) or field.description, f"{model.__name__}.{name}"
            for inner in inner_types:
                if inner in (ExperimentConfig, Percentiles):
                    continue
                if isinstance(inner, type) and hasattr(inner, "model_fields"):
                    check(inner)

    check(ExperimentResult)
