"""What host and container agree on, and nothing else: pydantic models and the work folder."""

from llenergymeasure.contract.config import (
    BACKENDS,
    Backend,
    Baseline,
    Decoding,
    ExperimentConfig,
    FixedLength,
    HFDatasetPrompts,
    JsonlPrompts,
    NormalLength,
    Precision,
    PyTorchConfig,
    SyntheticPrompts,
    TensorRTConfig,
    UniformLength,
    VLLMConfig,
    Warmup,
)
from llenergymeasure.contract.result import RESULT_SCHEMA_VERSION, ExperimentResult
from llenergymeasure.contract.run import RunContext, RunRequest

__all__ = [
    "BACKENDS",
    "RESULT_SCHEMA_VERSION",
    "Backend",
    "Baseline",
    "Decoding",
    "ExperimentConfig",
    "ExperimentResult",
    "FixedLength",
    "HFDatasetPrompts",
    "JsonlPrompts",
    "NormalLength",
    "Precision",
    "PyTorchConfig",
    "RunContext",
    "RunRequest",
    "SyntheticPrompts",
    "TensorRTConfig",
    "UniformLength",
    "VLLMConfig",
    "Warmup",
]
