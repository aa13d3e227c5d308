"""What host and container agree on, and nothing else: pydantic models and the work folder."""

from llenergymeasure.contract.config import (
    BACKENDS,
    Backend,
    Baseline,
    Decoding,
    ExperimentConfig,
    Precision,
    Warmup,
)
from llenergymeasure.contract.prompt_lengths import FixedLength, NormalLength, UniformLength
from llenergymeasure.contract.prompt_sources import (
    HFDatasetPrompts,
    JsonlPrompts,
    SyntheticPrompts,
)
from llenergymeasure.contract.result import RESULT_SCHEMA_VERSION, ExperimentResult
from llenergymeasure.contract.run import RunContext, RunRequest
from llenergymeasure.contract.sections.pytorch import PyTorchConfig
from llenergymeasure.contract.sections.tensorrt import TensorRTConfig
from llenergymeasure.contract.sections.vllm import VLLMConfig

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
