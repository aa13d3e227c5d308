"""A figure of one result read by its dotted name, and its instrument uncertainty: what the
views that summarise results themselves (compare, a search's confirmation) need."""

from __future__ import annotations

from typing import Any

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.stats import scaled_uncertainties


def value_at(result: ExperimentResult, path: str) -> Any:
    """`result.<path>` (e.g. "latency.ttft_ms.p50"); None where a part is null or absent."""
    node: Any = result
    for part in path.split("."):
        node = getattr(node, part, None) if node is not None else None
    return node


def instrument_u(result: ExperimentResult, metric: str) -> float | None:
    """The run's standard uncertainty of `metric` from the instrument, where the catalogue
    derives it from an energy (`Metric.uncertainty`); None otherwise."""
    known = BY_COLUMN.get(metric)
    if known is None or known.uncertainty is None:
        return None
    energy, u = known.uncertainty
    (found,) = scaled_uncertainties(
        [value_at(result, metric)], [value_at(result, energy)], [value_at(result, u)]
    )
    return found
