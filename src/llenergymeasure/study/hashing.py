"""Canonical hashes: of one experiment configuration, and of a study's design."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.config import ExperimentConfig


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces, floats as Python's shortest round-trip repr: stable across runs."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_hash(config: ExperimentConfig) -> str:
    """SHA-256 (hex) of the complete configuration, defaults included.

    Canonical: the validated model's JSON with keys sorted at every level and floats in shortest
    round-trip form, so neither the file's key order nor the contract's field order matters, and
    two spellings of the same experiment (a default written out or left implicit) hash alike.
    Sorting through orjson keeps 10^5 configurations well under a second.
    """
    return data_hash(config.model_dump(mode="json"))


def data_hash(data: dict[str, Any]) -> str:
    """`config_hash` of a configuration already dumped as JSON data (`model_dump(mode="json")`)."""
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def design_hash(study: StudyConfig) -> str:
    """SHA-256 (hex) of what the study measures: defaults, base, sweep, experiments, images,
    and the search, if any, but for its budget.

    `execution:` (cycles, order, gaps, timeouts, GPUs), `name`, `output_dir`, `offline` and a
    search's budget (`SearchBudget`: trials, patience, max_hours, confirm.max_runs) are left
    out, so changing how a study runs, or how much a search may spend, keeps its identity.
    """
    design = {
        "base_defaults": study.base_defaults,
        "defaults": study.defaults,
        "sweep": study.sweep,
        "experiments": study.experiments,
        "images": study.images,
    }
    if study.search is not None:  # a grid study's hash stays as it was before searches existed
        design["search"] = study.search.design_dump()
    return hashlib.sha256(canonical_json(design).encode()).hexdigest()
