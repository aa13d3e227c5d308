"""What a session measured: the phases every mode shares and the mode's window, as the
result assembler reads them."""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.backends.base import EngineArguments, MemoryStats, ModelShape
from llenergymeasure.contract.baseline import ReusedBaseline
from llenergymeasure.contract.result import Latency
from llenergymeasure.energy.meter import WindowEnergy
from llenergymeasure.energy.sampler import Row


@dataclass(frozen=True)
class Phases:
    """What every mode measured before its window."""

    build: WindowEnergy | None  # None: nothing was compiled apart, see build_skipped
    build_skipped: str | None
    tokenisation_s: float
    load: WindowEnergy
    baseline: WindowEnergy | None  # None: disabled in the config, or reused
    counter_update_s: float | None  # the NVML counter's measured update period
    counter_update_reason: str | None  # why it is None
    reused: ReusedBaseline | None = None  # an earlier run's baseline, in place of `baseline`
    reuse_refused: str | None = None  # why the baseline offered for reuse was not used


@dataclass(frozen=True)
class HeatOutcome:
    """Warm-up continued until the GPUs' temperature was steady (`warmup.thermal_max_s`)."""

    duration_s: float
    batches: int
    settled: bool | None  # None: no temperature to judge by
    rise_c: float | None  # the last reading of the trailing rise
    reason: str | None = None  # why it was not judged


@dataclass(frozen=True)
class WarmupOutcome:
    duration_s: float
    batches: int
    converged: bool | None  # None: the mode has no convergence check (serving)
    final_cv: float | None
    heat: HeatOutcome | None = None  # None: thermal settling not asked for


@dataclass(frozen=True)
class Measured:
    """What a mode measured in its window, for the assembler."""

    window: WindowEnergy
    window_rows: list[Row]  # the sampler's readings inside the window
    warmup: WarmupOutcome
    requests: list[tuple[int, int]]  # (input, output) tokens of each request the window counts
    output_tokens: float  # output tokens attributed to the window
    passes: int
    batches: int
    latency: Latency
    memory: MemoryStats
    shape: ModelShape
    gpu_process_counts: list[int]  # compute processes per GPU, seen during the window
    engine_arguments: EngineArguments | None = None  # None: the adapter's, after its load
