"""Offline mode: the prompt set in batches through the engine's own API.

After the shared phases: full-shape warm-up batches until latency is stable (or the cap), then
the measured window: the prompt set repeated until `min_window_s` has passed, synchronised at
both edges and metered by its own EnergyMeter window.
"""

from __future__ import annotations

import time
from typing import Any

from llenergymeasure.backends.base import BatchOutput
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.pruning import SLICES, slice_figures, slices_passed
from llenergymeasure.contract.result import QualityWarning
from llenergymeasure.contract.workdir import ProgressEvent
from llenergymeasure.energy.sampler import temperature_rise_c
from llenergymeasure.experiment.measured import HeatOutcome, Measured, WarmupOutcome
from llenergymeasure.experiment.metrics import coefficient_of_variation, latency
from llenergymeasure.experiment.session import Session


def _batches(prompts: list[list[int]], size: int) -> list[list[list[int]]]:
    return [prompts[k : k + size] for k in range(0, len(prompts), size)]


class OfflineSession(Session):
    def load(self, prompts: list[list[int]]) -> str:
        start = time.perf_counter()
        self.adapter.load(
            self.config, offline=self.offline, longest_prompt_tokens=max(map(len, prompts))
        )
        self.adapter.synchronize()
        return f"{time.perf_counter() - start:.2f} s"

    def settle(self) -> None:
        self.adapter.synchronize()

    def measure(self, prompts: list[list[int]]) -> Measured:
        config, backend, meter = self.config, self.adapter, self.instruments.meter
        spec = spec_of(config.backend)
        # static batching: batches of the section's size; continuous: the whole set at once
        batch_size = (
            getattr(config.backend_section, spec.concurrency_key)
            if spec.batching == "static"
            else len(prompts)
        )
        batches = _batches(prompts, batch_size)
        prepared = [backend.prepare(batch) for batch in batches]
        # The widest padded batch is the full shape the window will run.
        widest = max(range(len(batches)), key=lambda k: len(batches[k]) * max(map(len, batches[k])))
        warmup = self._warm_up(prepared[widest])
        self.emit(
            ProgressEvent(
                event="warmup_done", detail=f"{warmup.batches} batches, cv={warmup.final_cv}"
            )
        )
        outputs: list[BatchOutput] = []
        requests: list[tuple[int, int]] = []
        backend.reset_peak_memory()
        backend.synchronize()
        meter.begin("window")
        window_start = time.perf_counter()
        passes = reported = 0
        while True:
            passes += 1
            for k, batch in enumerate(prepared):
                output = backend.generate(batch)
                outputs.append(output)
                lengths = [len(p) for p in batches[k]]
                requests.extend(zip(lengths, output.output_tokens, strict=True))
                self.emit(
                    ProgressEvent(event="batch", i=k + 1, n=len(prepared), detail=f"pass {passes}")
                )
                reported = self._report_slices(reported, window_start, requests)
            if time.perf_counter() - window_start >= config.min_window_s:
                break
        backend.synchronize()
        window = meter.end("window")
        rows = [r for r in self.instruments.rows() if r.phase == "window"]
        return Measured(
            window=window,
            window_rows=rows,
            warmup=warmup,
            requests=requests,
            output_tokens=sum(o for _, o in requests),
            passes=passes,
            batches=len(outputs),
            latency=latency(outputs, backend.latency_method),
            memory=backend.memory_stats(),
            shape=backend.model_shape(),
            gpu_process_counts=self.instruments.gpu_process_counts(),
        )

    def _report_slices(
        self, reported: int, window_start: float, requests: list[tuple[int, int]]
    ) -> int:
        """Each slice of min_window_s passed since the last report: the window so far, for a
        search's pruner (the slices one batch passed share its figures); the slices reported."""
        elapsed = time.perf_counter() - window_start
        passed = slices_passed(elapsed, self.config.min_window_s)
        if passed <= reported:
            return reported
        self.adapter.synchronize()
        tokens = sum(o for _, o in requests)
        gpu_j = self.instruments.meter.gpu_j_so_far("window")
        figures = slice_figures(tokens, time.perf_counter() - window_start, gpu_j)
        for step in range(reported + 1, passed + 1):
            self.emit(ProgressEvent(event="slice", i=step, n=SLICES, figures=figures))
        return passed

    def _warm_up(self, prepared: Any) -> WarmupOutcome:
        """Full-shape batches until the trailing latencies' CV is within the bound, or the cap."""
        spec = self.config.warmup
        start = time.perf_counter()
        if not spec.enabled:
            return WarmupOutcome(0.0, 0, False, None)
        latencies: list[float] = []
        cv: float | None = None
        converged = False
        for done in range(1, spec.max_batches + 1):
            began = time.perf_counter()
            self.adapter.generate(prepared)
            self.adapter.synchronize()
            latencies.append(time.perf_counter() - began)
            if done >= max(spec.min_batches, spec.cv_window):
                cv = coefficient_of_variation(latencies[-spec.cv_window :])
                if cv <= spec.cv_bound:
                    converged = True
                    break
        heat = self._settle_heat(prepared) if spec.thermal_max_s > 0 else None
        batches = len(latencies) + (heat.batches if heat is not None else 0)
        return WarmupOutcome(time.perf_counter() - start, batches, converged, cv, heat)

    def _settle_heat(self, prepared: Any) -> HeatOutcome:
        """More full-shape batches until every GPU's temperature rose by at most
        `thermal_rise_c` over the trailing `thermal_window_s`, or `thermal_max_s` has passed."""
        spec = self.config.warmup
        if self.instruments.sampler is None:
            reason = self.instruments.gpu_reason or "no GPU sampler"
            return HeatOutcome(0.0, 0, None, None, reason)
        start = time.perf_counter()
        batches, rise = 0, None
        while True:
            self.adapter.generate(prepared)
            self.adapter.synchronize()
            batches += 1
            now = time.perf_counter()
            if now - start >= spec.thermal_window_s:
                rise = temperature_rise_c(self.instruments.rows(), now - spec.thermal_window_s)
                if rise is None:
                    reason = "the GPUs report no temperature"
                    return HeatOutcome(now - start, batches, None, None, reason)
                if rise <= spec.thermal_rise_c:
                    return HeatOutcome(now - start, batches, True, rise)
            if now - start >= spec.thermal_max_s:
                return HeatOutcome(now - start, batches, False, rise)

    def mode_warnings(self, measured: Measured) -> list[QualityWarning]:
        config, warmup = self.config, measured.warmup
        out: list[QualityWarning] = []
        window_s = measured.window.duration_s
        if window_s < config.min_window_s:
            out.append(
                QualityWarning(
                    code="window_too_short",
                    message=f"window {window_s:.2f} s < min_window_s {config.min_window_s}",
                )
            )
        if config.warmup.enabled and not warmup.converged:
            if warmup.final_cv is None:
                detail = (
                    f"the cap of {warmup.batches} warmup batches is below cv_window "
                    f"({config.warmup.cv_window}): latency stability was never checked"
                )
            else:
                detail = (
                    f"latency CV {warmup.final_cv:.3f} still above {config.warmup.cv_bound} "
                    f"after {warmup.batches} warmup batches"
                )
            out.append(QualityWarning(code="warmup_not_converged", message=detail))
        heat = warmup.heat
        if heat is not None and heat.settled is not True:
            detail = (
                f"temperature not judged: {heat.reason}"
                if heat.settled is None
                else f"temperature still rising {heat.rise_c:.0f} C per "
                f"{config.warmup.thermal_window_s:g} s after {heat.duration_s:.0f} s "
                f"(thermal_max_s {config.warmup.thermal_max_s:g})"
            )
            out.append(QualityWarning(code="temperature_not_settled", message=detail))
        return out

    def close(self) -> None:
        self.adapter.close()
