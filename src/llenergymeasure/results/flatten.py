"""One run as one flat row (a staged serving run: one row per stage): ids, swept values, every
metric with its unit in the column name.

Metric columns are `<section>.<field>` of ExperimentResult (`energy.j_per_output_token`,
`latency.ttft_ms.p50`); the contract puts units in field names, so the columns carry them.
A null figure keeps its `<section>.<field>_reason` column so "n/a" can always say why. A stage's
row takes its sections from the stage and adds `stage`, `stage.*` and `max_rate.*` columns.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from llenergymeasure.contract.result import (
    FIGURE_SECTIONS,
    ExperimentResult,
    Percentiles,
    StageResult,
    Validity,
)
from llenergymeasure.results.load import RunData
from llenergymeasure.results.validity import describe

METRIC_SECTIONS = FIGURE_SECTIONS  # serving: mode serving only
PERCENTILE_STATS = tuple(Percentiles.model_fields)
ID_COLUMNS = (
    "study_id",
    "run_id",
    "run_index",
    "config_index",
    "config_hash",
    "cycle",
    "backend",
    "model",
    "outcome",
    "error",
    "image_ref",
    "image_id",
    "image_digest",
)


def cell(value: Any) -> Any:
    """A value as a table cell: scalars as they are, anything nested as compact JSON."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


STAGE_KEYS = ("request_rate", "max_concurrency", "n_requests", "duration_s", "outcome", "detail")


def run_rows(run: RunData, study_id: str) -> list[dict[str, Any]]:
    """The rows of one planned run: one, or one per stage of a staged serving run; metric
    columns are present only where it has a result."""
    ids = id_columns(run, study_id)
    result = run.result
    if result is None:
        return [ids]
    if not result.stages:
        return [{**ids, **metric_columns(result)}]
    rows = []
    for stage in result.stages:
        row = {**ids, **_result_columns(result), **section_columns(stage), "stage": stage.index}
        row.update({f"stage.{key}": getattr(stage, key) for key in STAGE_KEYS})
        row["stage.met_slo"] = stage.met_slo
        row["stage.headline"] = stage.index == result.headline_stage
        if result.max_rate is not None:
            found = result.max_rate.model_dump(exclude={"method"})
            row.update({f"max_rate.{key}": value for key, value in found.items()})
        rows.append(row)
    return rows


def id_columns(run: RunData, study_id: str) -> dict[str, Any]:
    """What identifies a planned run: ids, outcome, image, swept values."""
    planned, record, result = run.planned, run.record, run.result
    context = result.context if result is not None else None
    row: dict[str, Any] = {
        "study_id": study_id,
        "run_id": planned.run_id,
        "run_index": planned.run_index,
        "config_index": planned.config_index,
        "config_hash": planned.config_hash,
        "cycle": planned.cycle,
        "backend": planned.config.backend,
        "model": planned.config.model,
        "outcome": run.outcome,
        "error": run.error,
        "image_ref": _first(record and record.image_ref, context and context.image_ref),
        "image_id": _first(record and record.image_id, context and context.image_id),
        "image_digest": _first(record and record.image_digest, context and context.image_digest),
    }
    for key, value in planned.swept.items():
        row.setdefault(key, cell(value))
    return row


def metric_columns(result: ExperimentResult) -> dict[str, Any]:
    return {**_result_columns(result), **section_columns(result)}


def _result_columns(result: ExperimentResult) -> dict[str, Any]:
    """What a run's rows share: its times and environment."""
    env = result.environment
    limits = [gpu.power_limit_w for gpu in env.gpus if gpu.power_limit_w is not None]
    return {
        # the limit the container read back (a swept gpu.power_limit_w is the one asked for)
        "environment.power_limit_w": min(limits) if limits else None,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "environment.device": env.device,
        "environment.gpus": ";".join(gpu.name for gpu in env.gpus),
        "environment.backend_engine": env.backend_engine,
        "environment.backend_engine_version": env.backend_engine_version,
        "environment.driver_version": env.driver_version,
        "environment.hostname": env.hostname,
    }


def section_columns(holder: ExperimentResult | StageResult) -> dict[str, Any]:
    """`<section>.<field>` of each figure section a result (or one stage) holds, and its
    warnings."""
    columns: dict[str, Any] = {"warnings": ",".join(w.code for w in holder.warnings)}
    for section in METRIC_SECTIONS:
        model = getattr(holder, section)
        if model is None:
            continue
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            key = f"{section}.{name}"
            if _is_percentiles(field.annotation):
                for stat in PERCENTILE_STATS:
                    columns[f"{key}.{stat}"] = getattr(value, stat) if value is not None else None
            elif isinstance(value, Validity):
                columns[f"{key}.valid"] = value.valid
                columns[f"{key}.reasons"] = ",".join(r.code for r in value.reasons)
                columns[f"{key}.detail"] = describe(value.reasons)
            elif isinstance(value, list):
                columns[key] = ";".join(str(item) for item in value)
            elif isinstance(value, dict):
                columns[key] = cell(value)
            else:
                columns[key] = value
    return columns


def _is_percentiles(annotation: Any) -> bool:
    if annotation is Percentiles:
        return True
    return Percentiles in getattr(annotation, "__args__", ())


def _first(*values: str | None) -> str | None:
    return next((value for value in values if value), None)


def reason_column(metric: str) -> str:
    """The column saying why a metric is null: `latency.ttft_ms.p50` -> `latency.ttft_ms_reason`."""
    parts = metric.split(".")
    if len(parts) == 3:
        return f"{parts[0]}.{parts[1]}_reason"
    return f"{metric}_reason"
