"""PyTorch backend: Hugging Face transformers `generate` with static, left-padded batches.

Per-token times come from a streamer. transformers calls `streamer.put(tokens.cpu())` once per
decoding step (its non-deferred `StopCheck`, used on CUDA and CPU), and `.cpu()` is a blocking
device-to-host copy: when `put` runs, that step's tokens exist, so a host clock read there is a
real token time on CUDA too. The deferred stop check (one step late) is used only on Apple `mps`,
which this backend does not run on.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM
from transformers.generation.streamers import BaseStreamer

from llenergymeasure.backends.base import (
    BackendAdapter,
    BatchOutput,
    Device,
    MemoryStats,
    ModelShape,
    hub_kwargs,
)
from llenergymeasure.backends.shape import shape_of
from llenergymeasure.contract.config import ExperimentConfig, Precision
from llenergymeasure.contract.sections.pytorch import PyTorchConfig

_DTYPES = {
    Precision.fp32: torch.float32,
    Precision.fp16: torch.float16,
    Precision.bf16: torch.bfloat16,
}


class StepClock(BaseStreamer):
    """Records the host time of every decoding step; the first `put` is the prompt, skipped."""

    def __init__(self) -> None:
        self.prompt_seen = False
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        return None


def count_generated(rows: list[list[int]], eos_ids: set[int]) -> list[int]:
    """Tokens actually generated per row: up to and including the first EOS, never padding.

    After a row stops, transformers fills it with the pad id (often equal to EOS), so everything
    after the first EOS is padding.
    """
    counts = []
    for row in rows:
        n = len(row)
        for k, token in enumerate(row):
            if token in eos_ids:
                n = k + 1
                break
        counts.append(n)
    return counts


class PyTorchBackend(BackendAdapter):
    name = "pytorch"

    def __init__(self) -> None:
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Device = "cpu"
        self._gen_kwargs: dict[str, Any] = {}
        self._eos_ids: set[int] = set()

    # --- loading ---------------------------------------------------------------------------

    def load_tokenizer(self, config: ExperimentConfig, *, offline: bool) -> None:
        super().load_tokenizer(config, offline=offline)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token_id is None:
            if self._tokenizer.eos_token_id is None:
                raise ValueError(f"tokenizer of {config.model} has neither a pad nor an EOS token")
            self._tokenizer.pad_token = self._tokenizer.eos_token

    def load(self, config: ExperimentConfig, *, offline: bool, longest_prompt_tokens: int) -> None:
        section = config.pytorch
        assert section is not None
        self._device = _pick_device(config.gpu_count)
        kwargs: dict[str, Any] = {
            **hub_kwargs(config, offline=offline),
            "dtype": _DTYPES[config.precision],
        }
        if section.attn_implementation is not None:
            kwargs["attn_implementation"] = section.attn_implementation
        quantised = _quantisation(section, _DTYPES[config.precision])
        if quantised is not None:
            kwargs["quantization_config"] = quantised
        if self._device == "cuda" and (config.gpu_count > 1 or quantised is not None):
            kwargs["device_map"] = "auto"
        model = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(self._device)
        model.eval()
        if section.torch_compile:
            model.forward = torch.compile(model.forward, mode=section.torch_compile_mode)
        self._model = model
        self._gen_kwargs = self._generation_kwargs(config, section)
        torch.manual_seed(config.decoding.seed)

    def _generation_kwargs(self, config: ExperimentConfig, section: PyTorchConfig) -> dict:
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        decoding = config.decoding
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "pad_token_id": self._tokenizer.pad_token_id,
            "eos_token_id": sorted(self._eos_ids) or None,
            "use_cache": section.use_cache,
            "do_sample": not decoding.greedy,
            "repetition_penalty": decoding.repetition_penalty,
        }
        if config.fixed_output_length:
            # Suppresses EOS until max_new_tokens: every backend generates the same count.
            kwargs["min_new_tokens"] = config.max_new_tokens
        if decoding.greedy:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                temperature=decoding.temperature,
                top_p=decoding.top_p,
                top_k=decoding.top_k or None,
            )
        return kwargs

    # --- engine ------------------------------------------------------------------------------

    def engine(self) -> tuple[str, str | None]:
        return "transformers", transformers.__version__

    def device(self) -> Device:
        return self._device

    # --- generation ------------------------------------------------------------------------

    def prepare(self, batch: list[list[int]]) -> Any:
        padded = self._tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt")
        target = self._model.device
        return {
            "input_ids": padded["input_ids"].to(target),
            "attention_mask": padded["attention_mask"].to(target),
        }

    def generate(self, prepared: Any) -> BatchOutput:
        clock = StepClock()
        prompt_len = prepared["input_ids"].shape[1]
        start = time.perf_counter()
        with torch.inference_mode():
            sequences = self._model.generate(**prepared, **self._gen_kwargs, streamer=clock)
        rows = sequences[:, prompt_len:].tolist()  # host copy: the batch is finished here
        end = time.perf_counter()
        counts = count_generated(rows, self._eos_ids)
        steps = [t - start for t in clock.times]
        generated = len(rows[0]) if rows else 0
        if len(steps) != generated:
            raise RuntimeError(
                f"step clock saw {len(steps)} steps but {generated} tokens were generated"
            )
        return BatchOutput(
            output_tokens=counts,
            # Static batching hands every request back when the whole batch returns.
            request_latency_s=[end - start] * len(rows),
            token_times_s=[steps[:n] for n in counts],
        )

    def synchronize(self) -> None:
        if self._device == "cuda":
            torch.cuda.synchronize()

    def reset_peak_memory(self) -> None:
        if self._device == "cuda":
            for index in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(index)

    def memory_stats(self) -> MemoryStats:
        if self._device != "cuda":
            reason = "device is CPU: torch.cuda memory counters do not apply"
            return MemoryStats(None, None, reason)
        devices = range(torch.cuda.device_count())
        mib = float(2**20)
        return MemoryStats(
            peak_allocated_mb=sum(torch.cuda.max_memory_allocated(i) for i in devices) / mib,
            peak_reserved_mb=sum(torch.cuda.max_memory_reserved(i) for i in devices) / mib,
        )

    def model_shape(self) -> ModelShape:
        return shape_of(self._model)

    def close(self) -> None:
        self._model = None
        if self._device == "cuda":
            torch.cuda.empty_cache()


def _pick_device(gpu_count: int) -> Device:
    if gpu_count == 0:
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"gpu_count is {gpu_count} but CUDA is not available in this container "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "set gpu_count: 0 to measure on CPU, or run the GPU image with GPUs granted"
        )
    visible = torch.cuda.device_count()
    if visible < gpu_count:
        raise RuntimeError(f"gpu_count is {gpu_count} but only {visible} GPU(s) are visible")
    return "cuda"


def _quantisation(section: PyTorchConfig, dtype: Any) -> Any:
    if not (section.load_in_8bit or section.load_in_4bit):
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "load_in_8bit/load_in_4bit need the bitsandbytes package, which this image lacks; "
            "install it in the image or turn quantisation off"
        ) from exc
    from transformers import BitsAndBytesConfig

    if section.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=section.bnb_4bit_quant_type,
        bnb_4bit_compute_dtype=dtype,
    )
