"""Inference engine adapters (container side). Importing this package loads no engine."""

from llenergymeasure.backends.base import (
    BackendAdapter,
    BackendUnavailable,
    BatchOutput,
    MemoryStats,
    ModelShape,
)
from llenergymeasure.backends.registry import get_backend

__all__ = [
    "BackendAdapter",
    "BackendUnavailable",
    "BatchOutput",
    "MemoryStats",
    "ModelShape",
    "get_backend",
]
