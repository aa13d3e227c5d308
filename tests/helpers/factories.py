"""Contract and manifest records with valid defaults: a test names only what it is about.
(An ExperimentConfig needs nothing but its model: its own defaults are its factory.)"""

from __future__ import annotations

from typing import Any

from llenergymeasure.contract.run import RunContext
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord

RUN_ID = "0000_abcdef12_c0"


def run_context(**fields: Any) -> RunContext:
    values: dict[str, Any] = {
        "study_id": "s_1",
        "study_name": "s",
        "run_id": RUN_ID,
        "run_index": 0,
        "config_hash": "abcdef12" * 8,
        "cycle": 0,
    }
    return RunContext.model_validate({**values, **fields})


def study_record(**fields: Any) -> StudyRecord:
    values: dict[str, Any] = {
        "study_id": "s_20260101T000000_dddddddd",
        "study_name": "s",
        "design_hash": "d" * 64,
        "created_at": "2026-01-01T00:00:00Z",
        "llem_version": "0",
    }
    return StudyRecord.model_validate({**values, **fields})


def run_record(**fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "run_id": RUN_ID,
        "run_index": 0,
        "config_hash": "ab" * 32,
        "cycle": 0,
        "backend": "pytorch",
    }
    return RunRecord.model_validate({**values, **fields})
