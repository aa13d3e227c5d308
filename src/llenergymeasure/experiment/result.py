"""The one result assembler: a session's phases and measured window into the ExperimentResult
(energy, timings, tokens, throughput, memory, telemetry, FLOPs, warnings), for every mode."""

from __future__ import annotations

import resource
import statistics
import time
from collections import defaultdict
from typing import Any, Protocol

from llenergymeasure.backends.base import BackendAdapter
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.result import (
    Energy,
    ExperimentResult,
    GpuTelemetry,
    Memory,
    QualityWarning,
    ServingFigures,
    Throughput,
    Timings,
    TokenCounts,
)
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import WorkPaths, utc_now
from llenergymeasure.device import throttle_names
from llenergymeasure.energy.arithmetic import adjusted_energy_j, baseline_power_w
from llenergymeasure.energy.gpus import AT_POWER_LIMIT
from llenergymeasure.energy.sampler import Row, performance_throttles, temperatures_by_gpu
from llenergymeasure.experiment.energy_audit import Attribution, EnergyAudit, attribution
from llenergymeasure.experiment.environment import environment
from llenergymeasure.experiment.instruments import Instruments
from llenergymeasure.experiment.measured import HeatOutcome, Measured, Phases
from llenergymeasure.experiment.metrics import flops

TEMPERATURE_DRIFT_C = 10.0


class SessionView(Protocol):
    """What the assembler reads of a session (`session.Session`)."""

    request: RunRequest
    config: ExperimentConfig
    adapter: BackendAdapter
    instruments: Instruments
    started_at: str
    t0: float

    def mode_figures(self, measured: Measured, energy: Energy) -> ServingFigures | None: ...

    def mode_warnings(self, measured: Measured) -> list[QualityWarning]: ...


def _ratio(num: float | None, den: float | None, why: str) -> tuple[float | None, str | None]:
    if num is None or den is None or den == 0:
        return None, why
    return num / den, None


def energy(phases: Phases, measured: Measured, ins: Instruments, attributed: Attribution) -> Energy:
    w = measured.window
    output_tokens = measured.output_tokens
    gpu_j = w.gpu_j
    build_j, build_why = None, phases.build_skipped
    if phases.build is not None:
        build_j = phases.build.gpu_j
        build_why = None if build_j is not None else phases.build.gpu_reason
    gpu_why = w.gpu_reason or "GPU energy was not measured"
    base_gpu_w, base_gpu_why, base_cpu_w, base_cpu_why = _baseline_powers(phases)
    adjusted = adjusted_why = None
    if gpu_j is not None and base_gpu_w is not None:
        adjusted = adjusted_energy_j(gpu_j, base_gpu_w, w.duration_s)
    else:
        adjusted_why = gpu_why if gpu_j is None else base_gpu_why
    parts = {"gpu": gpu_j, "cpu_package": w.cpu_package_j, "dram": w.dram_j}
    measured_parts = [name for name, value in parts.items() if value is not None]
    total = sum(v for v in parts.values() if v is not None) if measured_parts else None
    no_tokens = "no output tokens were generated"
    jpt, jpt_why = _ratio(gpu_j, output_tokens or None, gpu_why if gpu_j is None else no_tokens)
    ajpt, ajpt_why = _ratio(adjusted, output_tokens or None, adjusted_why or no_tokens)
    tpj, tpj_why = _ratio(float(output_tokens), gpu_j or None, gpu_why)
    mean_w, mean_why = _ratio(gpu_j, w.duration_s, gpu_why)
    peak = peak_sum(measured.window_rows, "power_w")
    audit = EnergyAudit(phases, measured, ins, attributed)
    return Energy(
        gpu_source=w.gpu_source,
        cpu_source="rapl" if w.cpu_package_j is not None else "unavailable",
        gpu_j=gpu_j,
        gpu_j_reason=None if gpu_j is not None else gpu_why,
        per_gpu_j=w.per_gpu_j,
        cpu_package_j=w.cpu_package_j,
        cpu_package_j_reason=w.cpu_package_reason,
        dram_j=w.dram_j,
        dram_j_reason=w.dram_reason,
        baseline_gpu_w=base_gpu_w,
        baseline_gpu_w_reason=base_gpu_why,
        baseline_cpu_w=base_cpu_w,
        baseline_cpu_w_reason=base_cpu_why,
        gpu_adjusted_j=adjusted,
        gpu_adjusted_j_reason=adjusted_why,
        total_j=total,
        total_j_reason=None if measured_parts else "no energy source was readable",
        total_parts=measured_parts,  # type: ignore[arg-type]
        j_per_output_token=jpt,
        j_per_output_token_reason=jpt_why,
        adjusted_j_per_output_token=ajpt,
        adjusted_j_per_output_token_reason=ajpt_why,
        output_tokens_per_j=tpj,
        output_tokens_per_j_reason=tpj_why,
        mean_gpu_power_w=mean_w,
        mean_gpu_power_w_reason=mean_why,
        peak_gpu_power_w=peak,
        peak_gpu_power_w_reason=None if peak is not None else (ins.gpu_reason or "no samples"),
        load_gpu_j=phases.load.gpu_j,
        load_gpu_j_reason=None if phases.load.gpu_j is not None else phases.load.gpu_reason,
        engine_build_gpu_j=build_j,
        engine_build_gpu_j_reason=build_why,
        sample_interval_ms=ins.sampler.interval_s * 1000 if ins.sampler is not None else None,
        power_sample_method=ins.gpus.power_method if ins.gpus is not None else None,
        idle_baseline=audit.idle_baseline(),
        baseline_reused_from=phases.reused.origin if phases.reused is not None else None,
        baseline_reuse_refused=phases.reuse_refused,
        **audit.fields(),
    )


def _baseline_powers(
    phases: Phases,
) -> tuple[float | None, str | None, float | None, str | None]:
    """Idle GPU and CPU power, W, each with why it is None: this run's baseline, or the one it
    reused."""
    if phases.reused is not None:
        reused, origin = phases.reused.baseline, phases.reused.origin.run_id
        gpu_w = sum(reused.per_gpu_w) if reused.per_gpu_w is not None else None
        return (
            gpu_w,
            None
            if gpu_w is not None
            else f"the baseline reused from run {origin} has no GPU power",
            reused.cpu_w,
            None
            if reused.cpu_w is not None
            else f"the baseline reused from run {origin} has no CPU power",
        )
    b = phases.baseline
    if b is None:
        return None, "baseline disabled in the config", None, "baseline disabled in the config"
    gpu_w = gpu_why = cpu_w = None
    if b.gpu_j is not None:
        gpu_w = baseline_power_w(b.gpu_j, b.duration_s)
    else:
        gpu_why = b.gpu_reason or "baseline GPU energy was not measured"
    if b.cpu_package_j is not None:
        cpu_w = baseline_power_w(b.cpu_package_j + (b.dram_j or 0.0), b.duration_s)
    return gpu_w, gpu_why, cpu_w, None if cpu_w is not None else b.cpu_package_reason


def peak_sum(rows: list[Row], attr: str) -> float | None:
    """Highest value of `attr` summed over GPUs at one sampling instant."""
    totals: dict[float, float] = defaultdict(float)
    for r in rows:
        value = getattr(r.sample, attr)
        if value is not None:
            totals[r.t_s] += value
    return max(totals.values()) if totals else None


def _values(rows: list[Row], attr: str) -> list[float]:
    return [v for r in rows if (v := getattr(r.sample, attr)) is not None]


def telemetry(rows: list[Row], reason: str | None, written: bool) -> GpuTelemetry:
    why = reason or "the GPU does not report this"
    util = _values(rows, "utilisation_pct")
    clock = _values(rows, "sm_clock_mhz")
    temps = _values(rows, "temperature_c")
    by_gpu = temperatures_by_gpu(rows)
    seen: set[str] = set()
    for r in rows:
        if r.sample.throttle_bitmask is not None:
            seen.update(throttle_names(r.sample.throttle_bitmask))
    return GpuTelemetry(
        utilisation_mean_pct=statistics.fmean(util) if util else None,
        utilisation_mean_pct_reason=None if util else why,
        temperature_start_c=max(t[0] for t in by_gpu.values()) if by_gpu else None,
        temperature_start_c_reason=None if by_gpu else why,
        temperature_end_c=max(t[-1] for t in by_gpu.values()) if by_gpu else None,
        temperature_end_c_reason=None if by_gpu else why,
        temperature_max_c=max(temps) if temps else None,
        temperature_max_c_reason=None if temps else why,
        sm_clock_mean_mhz=statistics.fmean(clock) if clock else None,
        sm_clock_mean_mhz_reason=None if clock else why,
        throttle_reasons=sorted(seen),
        samples=len(rows),
        timeseries_file=WorkPaths.TIMESERIES if written else None,
    )


def common_warnings(
    session: SessionView, measured: Measured, e: Energy, ins: Instruments, attributed: Attribution
) -> list[QualityWarning]:
    """The warnings of every mode: the window's temperature, throttling, other processes, the
    GPUs metered, persistence mode, energy not measured, no baseline."""
    config = session.config
    rows = measured.window_rows
    out: list[QualityWarning] = []

    def warn(code: str, message: str) -> None:
        out.append(QualityWarning(code=code, message=message))  # type: ignore[arg-type]

    for gpu, temps in temperatures_by_gpu(rows).items():
        if temps[-1] - temps[0] > TEMPERATURE_DRIFT_C:
            warn(
                "temperature_drift",
                f"GPU {gpu} warmed from {temps[0]:.0f} C to {temps[-1]:.0f} C in the window",
            )
    throttled = performance_throttles(rows)
    if throttled:
        at_limit = (
            " (sw_power_cap: the GPU ran at its power limit)" if AT_POWER_LIMIT in throttled else ""
        )
        warn(
            "throttling", f"clocks were limited during the window: {', '.join(throttled)}{at_limit}"
        )
    if attributed.other_processes:
        warn(
            "other_gpu_processes",
            f"{attributed.other_processes} other compute process(es) shared a GPU during the "
            "window",
        )
    if attributed.identity_mismatch:
        warn(
            "gpu_identity",
            f"{attributed.identity_mismatch}: the energy may not be this run's GPUs'",
        )
    if ins.gpus is not None:
        off = [g.index for g in ins.gpus.static_info() if g.persistence_mode is False]
        if off:
            warn("persistence_mode_off", f"persistence mode is off on GPU(s) {off}")
    if e.gpu_j is None:
        warn("energy_unavailable", f"GPU energy not measured: {e.gpu_j_reason}")
    if not config.baseline.enabled:
        warn("baseline_disabled", "no idle baseline: adjusted energy cannot be computed")
    return out


def _memory(measured: Measured, ins: Instruments) -> Memory:
    memory = measured.memory
    nvml_peak = peak_sum(measured.window_rows, "memory_used_mb")
    return Memory(
        peak_allocated_mb=memory.peak_allocated_mb,
        peak_allocated_mb_reason=memory.reason if memory.peak_allocated_mb is None else None,
        peak_reserved_mb=memory.peak_reserved_mb,
        peak_reserved_mb_reason=memory.reason if memory.peak_reserved_mb is None else None,
        nvml_peak_used_mb=nvml_peak,
        nvml_peak_used_mb_reason=(
            None if nvml_peak is not None else (ins.gpu_reason or "no memory samples")
        ),
        # ru_maxrss is in KiB on Linux.
        process_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def _heat_fields(heat: HeatOutcome | None) -> dict[str, Any]:
    """The thermal part of the warm-up, where one was asked for."""
    if heat is None:
        return {}
    return {
        "warmup_thermal_s": heat.duration_s,
        "warmup_thermal_s_reason": None,
        "warmup_thermal_settled": heat.settled,
        "warmup_thermal_settled_reason": heat.reason if heat.settled is None else None,
        "warmup_thermal_rise_c": heat.rise_c,
        "warmup_thermal_rise_c_reason": heat.reason if heat.rise_c is None else None,
    }


def assemble(
    session: SessionView, phases: Phases, measured: Measured, timeseries_written: bool
) -> ExperimentResult:
    ins = session.instruments
    window_s = measured.window.duration_s
    requests = measured.requests
    input_tokens = sum(i for i, _ in requests)
    output_tokens = measured.output_tokens
    attributed = attribution(measured, ins, session.request.context.gpu_uuids)
    e = energy(phases, measured, ins, attributed)
    env = environment(session.adapter, ins.gpus)
    if measured.engine_arguments is not None:
        env = env.model_copy(update={"backend_engine_arguments": measured.engine_arguments})
    warmup = measured.warmup
    return ExperimentResult(
        context=session.request.context,
        config=session.config,
        started_at=session.started_at,
        finished_at=utc_now(),
        environment=env,
        timings=Timings(
            engine_build_s=phases.build.duration_s if phases.build is not None else None,
            engine_build_s_reason=phases.build_skipped,
            load_s=phases.load.duration_s,
            tokenisation_s=phases.tokenisation_s,
            baseline_s=phases.baseline.duration_s if phases.baseline is not None else 0.0,
            warmup_s=warmup.duration_s,
            warmup_batches=warmup.batches,
            warmup_converged=warmup.converged,
            warmup_final_cv=warmup.final_cv,
            **_heat_fields(warmup.heat),
            window_s=window_s,
            total_s=time.perf_counter() - session.t0,
        ),
        tokens=TokenCounts(
            requests=len(requests),
            passes=measured.passes,
            input_tokens=input_tokens,
            output_tokens=round(output_tokens),
            batches=measured.batches,
        ),
        throughput=Throughput(
            output_tokens_per_s=output_tokens / window_s,
            total_tokens_per_s=(input_tokens + output_tokens) / window_s,
            requests_per_s=len(requests) / window_s,
        ),
        latency=measured.latency,
        energy=e,
        memory=_memory(measured, ins),
        telemetry=telemetry(measured.window_rows, ins.gpu_reason, timeseries_written),
        flops=flops(measured.shape, requests),
        serving=session.mode_figures(measured, e),
        warnings=session.mode_warnings(measured)
        + common_warnings(session, measured, e, ins, attributed),
    )
