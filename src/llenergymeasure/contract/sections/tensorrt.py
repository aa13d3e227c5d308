"""The `tensorrt:` section: TensorRT-LLM's PyTorch flow or a compiled engine (GPU only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llenergymeasure.contract.fields import CombinationError, PositiveInt
from llenergymeasure.contract.sections.base import BackendSection

TensorRTQuantization = Literal[
    "fp8", "int8_sq", "int4_awq", "w4a8_awq", "int8_wo", "int4_wo", "nvfp4"
]


class TensorRTConfig(BackendSection):
    engine: Literal["pytorch", "tensorrt"] = Field(
        "pytorch", description="TensorRT-LLM's PyTorch flow or a compiled TensorRT engine."
    )
    max_batch_size: PositiveInt = 8
    max_num_tokens: PositiveInt | None = None
    max_seq_len: PositiveInt | None = None
    tp_size: PositiveInt = 1
    pp_size: PositiveInt = 1
    quantization: TensorRTQuantization | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    kv_cache_free_gpu_memory_fraction: float = Field(0.9, gt=0, le=1)

    @property
    def gpus_needed(self) -> int:
        return self.tp_size * self.pp_size

    def check(self, gpu_count: int) -> None:
        if gpu_count == 0:
            raise CombinationError(
                "backend 'tensorrt' needs gpu_count >= 1", "backend", "gpu_count"
            )
        if self.gpus_needed != gpu_count:
            raise CombinationError(
                f"tensorrt.tp_size x pp_size ({self.gpus_needed}) must equal "
                f"gpu_count ({gpu_count})",
                "tensorrt.tp_size",
                "tensorrt.pp_size",
                "gpu_count",
            )
        if self.engine == "pytorch" and self.quantization is not None:
            raise CombinationError(
                "tensorrt.quantization quantises while building a TensorRT engine; the "
                "PyTorch flow (tensorrt.engine: pytorch) only loads checkpoints that are "
                "already quantised: set tensorrt.engine: tensorrt, or point model at a "
                "quantised checkpoint and leave quantization null",
                "tensorrt.engine",
                "tensorrt.quantization",
            )
