"""TensorRT-LLM backend: `tensorrt_llm`'s LLM API, PyTorch flow or compiled TensorRT engine.

`tensorrt.engine: pytorch` loads the checkpoint with TensorRT-LLM's PyTorch flow (no build).
`tensorrt.engine: tensorrt` compiles a TensorRT engine from the checkpoint (quantising as the
`tensorrt:` section says) once, saves it under the engine cache (`ENGINE_CACHE_DIR`,
a host folder mounted by the orchestrator) in a folder keyed by every build input, and loads it
from there on every later run. The build is its own metered step before the load, so the result
reports its time and energy apart (`timings.engine_build_s`, `energy.engine_build_gpu_j`).

Per-token times: each request of a batch is submitted with `generate_async(streaming=True)` and
the host clock is read as each streamed chunk arrives in the event loop; a chunk carrying several
tokens gives them the same time.

`tensorrt_llm` is imported inside `load`; without it the experiment fails naming the image to use.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import (
    BackendAdapter,
    BackendUnavailable,
    BatchOutput,
    Device,
    MemoryStats,
    ModelShape,
    ServerCommand,
    ServerRequest,
    flat,
)
from llenergymeasure.backends.shape import shape_from_config
from llenergymeasure.backends.tensorrt_args import (
    build_config,
    engine_cache_key,
    kv_cache_config,
    llm_kwargs,
    quant_config,
    sampling_kwargs,
    serve_arguments,
)
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.container import ENGINE_CACHE_DIR
from llenergymeasure.contract.workdir import WorkPaths

BUILD_RECORD = "llem-build.json"  # written last: its presence marks a complete cached engine


def import_tensorrt_llm() -> Any:
    try:
        import tensorrt_llm
    except ImportError as exc:
        image = spec_of("tensorrt").image
        raise BackendUnavailable(
            f"backend 'tensorrt' needs the tensorrt_llm package, which this image lacks "
            f"({exc}); run it in the {image} image: "
            f"`images: {{tensorrt: {image}:<version>}}` in the study"
        ) from exc
    return tensorrt_llm


async def _stream_batch(
    llm: Any, prompts: list[list[int]], params: Any, start: float
) -> tuple[list[list[float]], list[float], list[int]]:
    async def one(ids: list[int]) -> tuple[list[float], float, int]:
        times: list[float] = []
        n = 0
        async for chunk in llm.generate_async(ids, params, streaming=True):
            now = time.perf_counter() - start
            total = len(chunk.outputs[0].token_ids)
            times.extend([now] * (total - n))
            n = total
        return times, time.perf_counter() - start, n

    results = await asyncio.gather(*(one(ids) for ids in prompts))
    return [r[0] for r in results], [r[1] for r in results], [r[2] for r in results]


class TensorRTBackend(BackendAdapter):
    name = "tensorrt"
    latency_method = (
        "host perf_counter as each streamed chunk of generate_async(streaming=True) arrives; "
        "TTFT = first token since the batch was submitted, ITL = gaps between a request's "
        "consecutive tokens, request = until that request's stream ended (in-flight batching)"
    )

    def __init__(self) -> None:
        # One event loop for the adapter's life: the executor's result queues may bind to the
        # loop of the first request, so every batch streams on that same loop.
        self._loop = asyncio.new_event_loop()
        self._trt: Any = None
        self._llm: Any = None
        self._tokenizer: Any = None
        self._params: Any = None
        self._config: ExperimentConfig | None = None
        self._offline = False

    def _engine_dir(self, config: ExperimentConfig) -> Path:
        root = Path(os.environ.get("LLEM_ENGINE_CACHE", ENGINE_CACHE_DIR))
        return root / engine_cache_key(config, self._trt.__version__)

    def build_skipped(self, config: ExperimentConfig) -> str | None:
        assert config.tensorrt is not None
        if config.tensorrt.engine == "pytorch":
            return "TensorRT-LLM's PyTorch flow runs the checkpoint; it compiles no engine"
        self._trt = import_tensorrt_llm()
        engine_dir = self._engine_dir(config)
        if (engine_dir / BUILD_RECORD).is_file():
            return f"engine reused from the cache ({engine_dir.name}), built by an earlier run"
        return None

    def build(self, config: ExperimentConfig, *, offline: bool) -> None:
        """Compile the engine for these build inputs and cache it; `load` then reads the cache.

        The built engine is released before `load`, so load time and energy are the same
        whether or not this run compiled it.
        """
        from tensorrt_llm._tensorrt_engine import LLM as EngineLLM
        from tensorrt_llm.llmapi import BuildConfig, QuantAlgo, QuantConfig

        kwargs = llm_kwargs(config, config.model, offline=offline)
        extra: dict[str, Any] = {"build_config": BuildConfig(**build_config(config))}
        quant = quant_config(config)
        if quant is not None:
            extra["quant_config"] = QuantConfig(
                **{field: getattr(QuantAlgo, name) for field, name in quant.items()}
            )
        engine_dir = self._engine_dir(config)
        engine_dir.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        llm = EngineLLM(**kwargs, **extra)
        staging = Path(tempfile.mkdtemp(prefix=f".{engine_dir.name}.", dir=engine_dir.parent))
        try:
            llm.save(str(staging))
        finally:
            llm.shutdown()
        record = {"build_s": time.perf_counter() - start, "engine_version": self._trt.__version__}
        (staging / BUILD_RECORD).write_text(json.dumps(record))
        try:
            staging.rename(engine_dir)
        except OSError:  # another run cached the same engine meanwhile: keep theirs
            shutil.rmtree(staging, ignore_errors=True)

    def load(self, config: ExperimentConfig, *, offline: bool, longest_prompt_tokens: int) -> None:
        trt = import_tensorrt_llm()
        self._trt, self._config, self._offline = trt, config, offline
        from tensorrt_llm.llmapi import KvCacheConfig

        kwargs = llm_kwargs(config, config.model, offline=offline)
        kwargs["kv_cache_config"] = KvCacheConfig(**kv_cache_config(config))
        assert config.tensorrt is not None
        if config.tensorrt.engine == "pytorch":
            self._llm = trt.LLM(**kwargs)
        else:
            from tensorrt_llm._tensorrt_engine import LLM as EngineLLM

            self._llm = EngineLLM(**{**kwargs, "model": str(self._engine_dir(config))})
        self._params = trt.SamplingParams(**sampling_kwargs(config))

    def server_command(self, request: ServerRequest) -> ServerCommand:
        """`trtllm-serve MODEL` (GPU only): flags, and the rest of the engine's options in a
        YAML file it reads (`--extra_llm_api_options`), so the server runs the engine offline
        mode would (the KV cache without block reuse, the precision, the quantisation)."""
        executable = shutil.which("trtllm-serve")
        if executable is None:
            raise BackendUnavailable("trtllm-serve is not in this image: use the tensorrt image")
        config = request.config
        flags, options = serve_arguments(
            config, offline=request.offline, longest_prompt_tokens=request.longest_prompt_tokens
        )
        argv = [
            executable,
            config.model,
            *("--host", "127.0.0.1", "--port", str(request.port)),
            *("--served_model_name", request.served_model),
            *(part for key, value in flags.items() for part in (f"--{key}", str(value))),
            *("--extra_llm_api_options", WorkPaths.SERVER_OPTIONS),
        ]
        recorded = {**flags, "model": config.model, "extra_llm_api_options": options}
        return ServerCommand(
            argv, flat(recorded), {WorkPaths.SERVER_OPTIONS: json.dumps(options, indent=2) + "\n"}
        )

    def engine(self) -> tuple[str, str | None]:
        return "tensorrt_llm", getattr(self._trt, "__version__", None)

    def device(self) -> Device:
        return "cuda"

    def prepare(self, batch: list[list[int]]) -> Any:
        return [list(ids) for ids in batch]

    def generate(self, prepared: Any) -> BatchOutput:
        start = time.perf_counter()
        times, latency, counts = self._loop.run_until_complete(
            _stream_batch(self._llm, prepared, self._params, start)
        )
        return BatchOutput(output_tokens=counts, request_latency_s=latency, token_times_s=times)

    def synchronize(self) -> None:
        import torch

        if torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def reset_peak_memory(self) -> None:
        return None

    def memory_stats(self) -> MemoryStats:
        reason = (
            "TensorRT-LLM runs the model in its executor's worker processes and allocates "
            "outside torch's caching allocator; see nvml_peak_used_mb"
        )
        return MemoryStats(None, None, reason)

    def model_shape(self) -> ModelShape:
        assert self._config is not None
        return shape_from_config(self._config, offline=self._offline)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None and hasattr(llm, "shutdown"):
            llm.shutdown()
        self._loop.close()
