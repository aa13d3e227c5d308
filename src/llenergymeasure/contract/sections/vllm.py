"""The `vllm:` section: vLLM's engine arguments that llem exposes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llenergymeasure.contract.fields import CombinationError, PositiveInt
from llenergymeasure.contract.sections.base import BackendSection

VLLMQuantization = Literal[
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "fp8",
    "bitsandbytes",
    "compressed-tensors",
    "marlin",
    "gguf",
]


class VLLMConfig(BackendSection):
    max_num_seqs: PositiveInt = 256
    max_num_batched_tokens: PositiveInt | None = None
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enforce_eager: bool = False
    tensor_parallel_size: PositiveInt = 1
    pipeline_parallel_size: PositiveInt = 1
    quantization: VLLMQuantization | None = None
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = "auto"
    enable_prefix_caching: bool = False
    enable_chunked_prefill: bool | None = Field(None, description="None keeps vLLM's default.")
    max_model_len: PositiveInt | None = Field(
        None,
        description="None: the longest prompt of the run (after truncation) + max_new_tokens.",
    )
    block_size: PositiveInt | None = None
    engine_multiprocessing: bool = Field(
        True,
        description="vLLM's default V1 engine: the engine core runs in its own process, "
        "overlapping scheduling and output handling with the model's work. False runs it in "
        "the experiment process itself (VLLM_ENABLE_V1_MULTIPROCESSING=0).",
    )

    @property
    def gpus_needed(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def check(self, gpu_count: int) -> None:
        # gpu_count 0 is vLLM's CPU build (one process: TP = PP = 1).
        if self.gpus_needed != max(gpu_count, 1):
            raise CombinationError(
                f"vllm.tensor_parallel_size x pipeline_parallel_size "
                f"({self.gpus_needed}) must equal gpu_count ({gpu_count})"
                + (" (1 on CPU, gpu_count 0)" if gpu_count == 0 else ""),
                "vllm.tensor_parallel_size",
                "vllm.pipeline_parallel_size",
                "gpu_count",
            )
