"""The `pytorch:` section: transformers' generate() in static batches."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llenergymeasure.contract.fields import CombinationError, PositiveInt
from llenergymeasure.contract.sections.base import BackendSection


class PyTorchConfig(BackendSection):
    batch_size: PositiveInt = 1
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = Field(
        None, description="None keeps transformers' default for the model."
    )
    torch_compile: bool = False
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    use_cache: bool = True

    @model_validator(mode="after")
    def _one_quantisation(self) -> PyTorchConfig:
        if self.load_in_8bit and self.load_in_4bit:
            raise CombinationError(
                "load_in_8bit and load_in_4bit are mutually exclusive",
                "load_in_8bit",
                "load_in_4bit",
            )
        return self

    def check(self, gpu_count: int) -> None:
        if (self.load_in_8bit or self.load_in_4bit) and gpu_count == 0:
            raise CombinationError(
                "bitsandbytes quantisation (load_in_8bit/4bit) needs a GPU",
                "pytorch.load_in_8bit",
                "pytorch.load_in_4bit",
                "gpu_count",
            )
