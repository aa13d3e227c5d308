"""The measurement protocol: [build ->] tokenise -> load -> baseline -> warmup -> window.

Each step is metered by its own EnergyMeter window; only the measured window's energy is the
experiment's figure. Everything the report needs is gathered into a `Recording`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llenergymeasure.backends.base import BackendAdapter, BatchOutput, MemoryStats, ModelShape
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import ProgressEvent
from llenergymeasure.energy.meter import EnergyMeter, WindowEnergy
from llenergymeasure.energy.nvml import Nvml
from llenergymeasure.energy.rapl import Rapl
from llenergymeasure.energy.sampler import DEFAULT_INTERVAL_S, PowerSampler
from llenergymeasure.runner_entry.metrics import coefficient_of_variation
from llenergymeasure.runner_entry.prompts import tokenised_prompts

Emit = Callable[[ProgressEvent], None]


@dataclass
class Instruments:
    """NVML, the sampler and RAPL, opened for the experiment's GPUs; closed by `close`."""

    nvml: Nvml | None
    nvml_reason: str | None
    sampler: PowerSampler | None
    rapl: Rapl
    meter: EnergyMeter

    @classmethod
    def open(cls, gpu_count: int, interval_s: float = DEFAULT_INTERVAL_S) -> Instruments:
        nvml, reason = Nvml.open(gpu_count)
        indices = [g.index for g in nvml.static_info()] if nvml is not None else []
        sampler = PowerSampler(nvml.sample, indices, interval_s) if nvml is not None else None
        if sampler is not None:
            sampler.start()
        rapl = Rapl()
        return cls(nvml, reason, sampler, rapl, EnergyMeter(nvml, reason, sampler, rapl, indices))

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.nvml is not None:
            self.nvml.close()


@dataclass
class Recording:
    request: RunRequest
    started_at: str
    t0: float
    build: WindowEnergy | None  # None: no engine was compiled, see build_skipped
    build_skipped: str | None
    load: WindowEnergy
    tokenisation_s: float
    baseline: WindowEnergy | None
    warmup_s: float
    warmup_latencies_s: list[float]
    warmup_converged: bool
    warmup_final_cv: float | None
    window: WindowEnergy
    passes: int
    outputs: list[BatchOutput] = field(default_factory=list)
    inputs: list[list[int]] = field(default_factory=list)  # input tokens per request, per batch
    memory: MemoryStats | None = None
    shape: ModelShape | None = None
    gpu_process_counts: list[int] = field(default_factory=list)


def _batches(prompts: list[list[int]], size: int) -> list[list[list[int]]]:
    return [prompts[k : k + size] for k in range(0, len(prompts), size)]


def _warm_up(
    request: RunRequest, backend: BackendAdapter, prepared: Any
) -> tuple[list[float], bool, float | None]:
    """Full-shape batches until the trailing latencies' CV is within the bound, or the cap."""
    spec = request.config.warmup
    if not spec.enabled:
        return [], False, None
    latencies: list[float] = []
    cv: float | None = None
    for done in range(1, spec.max_batches + 1):
        start = time.perf_counter()
        backend.generate(prepared)
        backend.synchronize()
        latencies.append(time.perf_counter() - start)
        if done >= max(spec.min_batches, spec.cv_window):
            cv = coefficient_of_variation(latencies[-spec.cv_window :])
            if cv <= spec.cv_bound:
                return latencies, True, cv
    return latencies, False, cv


def run_protocol(
    request: RunRequest,
    backend: BackendAdapter,
    instruments: Instruments,
    emit: Emit,
    *,
    started_at: str,
    t0: float,
) -> Recording:
    config = request.config
    meter = instruments.meter
    offline = request.context.offline

    build_skipped = backend.build_skipped(config)
    build = None
    if build_skipped is None:
        meter.begin("build")
        backend.build(config, offline=offline)
        backend.synchronize()
        build = meter.end("build")

    # The prompts are tokenised before the engine loads, so it is sized to what the run has.
    start = time.perf_counter()
    backend.load_tokenizer(config, offline=offline)
    prompts = tokenised_prompts(config, backend, offline=offline)
    tokenisation_s = time.perf_counter() - start

    meter.begin("load")
    start = time.perf_counter()
    backend.load(config, offline=offline, longest_prompt_tokens=max(map(len, prompts)))
    backend.synchronize()
    load = meter.end("load")
    emit(ProgressEvent(event="model_loaded", detail=f"{time.perf_counter() - start:.2f} s"))

    spec = spec_of(config.backend)
    # static batching: batches of the section's size; continuous: the engine takes the whole set
    batch_size = (
        getattr(config.backend_section, spec.concurrency_key)
        if spec.batching == "static"
        else len(prompts)
    )
    batches = _batches(prompts, batch_size)
    prepared = [backend.prepare(batch) for batch in batches]

    baseline = None
    if config.baseline.enabled:
        backend.synchronize()
        meter.begin("baseline")
        time.sleep(config.baseline.duration_s)
        baseline = meter.end("baseline")
    emit(ProgressEvent(event="baseline_done"))

    # The widest padded batch is the full shape the window will run.
    widest = max(range(len(batches)), key=lambda k: len(batches[k]) * max(map(len, batches[k])))
    start = time.perf_counter()
    latencies, converged, cv = _warm_up(request, backend, prepared[widest])
    warmup_s = time.perf_counter() - start
    emit(ProgressEvent(event="warmup_done", detail=f"{len(latencies)} batches, cv={cv}"))

    outputs: list[BatchOutput] = []
    inputs: list[list[int]] = []
    backend.reset_peak_memory()
    backend.synchronize()
    meter.begin("window")
    window_start = time.perf_counter()
    passes = 0
    while True:
        passes += 1
        for k, batch in enumerate(prepared):
            outputs.append(backend.generate(batch))
            inputs.append([len(p) for p in batches[k]])
            emit(ProgressEvent(event="batch", i=k + 1, n=len(prepared), detail=f"pass {passes}"))
        if time.perf_counter() - window_start >= config.min_window_s:
            break
    backend.synchronize()
    window = meter.end("window")

    return Recording(
        request=request,
        started_at=started_at,
        t0=t0,
        build=build,
        build_skipped=build_skipped,
        load=load,
        tokenisation_s=tokenisation_s,
        baseline=baseline,
        warmup_s=warmup_s,
        warmup_latencies_s=latencies,
        warmup_converged=converged,
        warmup_final_cv=cv,
        window=window,
        passes=passes,
        outputs=outputs,
        inputs=inputs,
        memory=backend.memory_stats(),
        shape=backend.model_shape(),
        gpu_process_counts=(
            instruments.nvml.compute_process_counts() if instruments.nvml is not None else []
        ),
    )
