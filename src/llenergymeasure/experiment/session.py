"""One experiment inside its container, in either mode: the phases every mode shares, and the
seam where a mode measures its own way.

`Session.run`: [build ->] tokenise -> load (metered) -> the counter's update period (2 s of
polling) -> idle baseline (metered, with the model or the server loaded) -> `measure` (the
mode's own: offline batches, or a server under load) -> the result, by the one assembler every
mode calls (`result.assemble`). A mode adds its own warnings and figures through
`mode_warnings` and `mode_figures`; the common ones are the assembler's.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from llenergymeasure.backends.registry import get_backend
from llenergymeasure.contract.baseline import ReusedBaseline
from llenergymeasure.contract.result import (
    Energy,
    ExperimentResult,
    QualityWarning,
    ServingFigures,
)
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import ProgressEvent, utc_now
from llenergymeasure.energy.meter import WindowEnergy
from llenergymeasure.experiment.instruments import Instruments
from llenergymeasure.experiment.measured import Measured, Phases
from llenergymeasure.experiment.prompts import PromptSet, tokenised_prompts
from llenergymeasure.experiment.result import assemble

Emit = Callable[[ProgressEvent], None]
COUNTER_PROBE_S = 2.0


class Session(ABC):
    prompt_set: PromptSet  # set by `run` before `load`

    def __init__(
        self,
        request: RunRequest,
        workdir: Path,
        emit: Emit,
        instruments: Instruments,
        t0: float,
    ) -> None:
        """`t0`: when the experiment process started (perf_counter), for the total time."""
        self.request, self.workdir, self.emit = request, workdir, emit
        self.instruments, self.t0 = instruments, t0
        self.config = request.config
        self.offline = request.context.offline
        self.adapter = get_backend(request.config.backend)
        self.started_at = utc_now()

    def run(self, write_timeseries: Callable[[], bool]) -> ExperimentResult:
        """Every phase, then the result; `write_timeseries` stops the sampler and saves its
        rows (True when written), called once the window is over."""
        meter = self.instruments.meter
        build, build_skipped = self.build()
        start = time.perf_counter()
        # The prompts are tokenised before the engine loads, so it is sized to what the run has.
        self.adapter.load_tokenizer(self.config, offline=self.offline)
        self.prompt_set = tokenised_prompts(self.config, self.adapter, offline=self.offline)
        prompts = self.prompt_set.ids
        tokenisation_s = time.perf_counter() - start
        meter.begin("load")
        detail = self.load(prompts)
        load = meter.end("load")
        self.emit(ProgressEvent(event="model_loaded", detail=detail))
        baseline = None
        reused, refused = self.reusable_baseline()
        measure_baseline = self.config.baseline.enabled and reused is None
        if measure_baseline:
            self.settle()
        # The counter's update period, polled while idle (the edge term of the budget); before
        # the baseline, so the poll's own CPU and driver work is no part of the idle reading.
        counter = self.instruments.counter_update(COUNTER_PROBE_S)
        if measure_baseline:
            meter.begin("baseline")
            time.sleep(self.config.baseline.duration_s)
            baseline = meter.end("baseline")
        self.emit(ProgressEvent(event="baseline_done", detail="reused" if reused else None))
        measured = self.measure(prompts)
        phases = Phases(
            build, build_skipped, tokenisation_s, load, baseline, *counter, reused, refused
        )
        written = write_timeseries()
        return self.staged(assemble(self, phases, measured, written), phases, written)

    def reusable_baseline(self) -> tuple[ReusedBaseline | None, str | None]:
        """The baseline the host offered, where it still holds: the GPUs are no warmer now,
        with the model loaded, than during it (`ReusedBaseline.refusal`); else why not."""
        offered = self.request.context.reused_baseline
        if offered is None or not self.config.baseline.enabled:
            return None, None
        if self.config.baseline.reuse_s is None:
            return None, "baseline.reuse_s is not set"
        refused = offered.refusal(self.instruments.temperatures_c())
        return (offered, None) if refused is None else (None, refused)

    def build(self) -> tuple[WindowEnergy | None, str | None]:
        """Compile the engine `load` will use, metered apart: (its window, or why none)."""
        skipped = self.adapter.build_skipped(self.config)
        if skipped is not None:
            return None, skipped
        meter = self.instruments.meter
        meter.begin("build")
        self.adapter.build(self.config, offline=self.offline)
        self.adapter.synchronize()
        return meter.end("build"), None

    @abstractmethod
    def load(self, prompts: list[list[int]]) -> str:
        """Load the model (or start the server) for these prompts; a word on how it went."""

    def settle(self) -> None:  # noqa: B027 - a mode with nothing in flight needs nothing
        """Let the device go idle before the baseline."""

    @abstractmethod
    def measure(self, prompts: list[list[int]]) -> Measured:
        """The mode's measured window."""

    def staged(
        self, result: ExperimentResult, phases: Phases, timeseries_written: bool
    ) -> ExperimentResult:
        """The result with the mode's stages added (serving stages); as it is by default."""
        return result

    def mode_figures(self, measured: Measured, energy: Energy) -> ServingFigures | None:
        """The mode's own figures, from the window's energy (serving: per request, goodput)."""
        return None

    def mode_warnings(self, measured: Measured) -> list[QualityWarning]:
        """Warnings only this mode can raise."""
        return []

    def close(self) -> None:  # noqa: B027 - a mode that holds nothing needs nothing
        """Release what the session holds (an engine, a server), also after a failure."""
