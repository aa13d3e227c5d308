"""llenergymeasure: energy, throughput and latency of LLM inference, measured in a fresh
container per experiment.

The library API (`run_study`, `plan_study`, `load_results`, `validate`; `llenergymeasure.api`)
is imported on first use: the container side imports this package too and must never load the
host's modules (docker, the orchestrator).
"""

from __future__ import annotations

import importlib
from typing import Any

from llenergymeasure.version import __version__

_API = ("run_study", "plan_study", "load_results", "validate", "StudyResult", "UserError")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("llenergymeasure.api"), name)
    raise AttributeError(f"module 'llenergymeasure' has no attribute {name!r}")


__all__ = ["__version__", *_API]
