"""Builds study folders on disk from real contract models with synthetic figures.

Figures are chosen by the test, so statistics over them have known answers. The folder is the
one the orchestrator lays out: plan.json, manifest.jsonl, study.yaml, experiments/<run_id>/.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.result import (
    Energy,
    Environment,
    ExperimentResult,
    Flops,
    GpuInfo,
    GpuTelemetry,
    Latency,
    Memory,
    Percentiles,
    QualityWarning,
    Throughput,
    Timings,
    TokenCounts,
)
from llenergymeasure.contract.run import RunContext
from llenergymeasure.contract.validity import Validity, ValidityReason
from llenergymeasure.contract.workdir import (
    ErrorReport,
    WorkPaths,
    atomic_write_json,
    run_dir_name,
)
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.models import PlannedRun

OUTPUT_TOKENS = 1000
REQUESTS = 10
NO_ENERGY = "no NVIDIA GPU in the container; energy cannot be read"
NO_BUILD = "backend 'pytorch' loads the weights directly; it compiles no engine"


@dataclass(frozen=True)
class Figures:
    """The headline figures of one synthetic run; the rest are derived from them."""

    tokens_per_s: float
    j_per_token: float | None = None  # None: a CPU-only run, energy unavailable
    ttft_p50_ms: float = 20.0
    itl_p50_ms: float = 10.0
    warnings: tuple[str, ...] = ()
    uncertainty_pct: float = 0.5  # the instrument's standard uncertainty of gpu_j, %
    invalid: tuple[str, ...] = ()  # validity reason codes of the GPU energy
    counter_integral_ratio: float = 1.01
    # (catalogue column, value) pairs set over the figures above (`with_metrics`)
    metrics: tuple[tuple[str, float], ...] = ()


def figures_of(values: Mapping[str, float]) -> Figures:
    """The figures of a run whose catalogue metrics (results/metrics.py) are `values`: J per
    output token and output tok/s as the headline figures (a valid GPU-energy reading; a
    placeholder one of 1 J/token where only another energy metric is named), every other
    metric set over them."""
    headline = {"energy.j_per_output_token", "throughput.output_tokens_per_s"}
    reads_energy = any(BY_COLUMN[name].reads_gpu_energy for name in values if name in BY_COLUMN)
    return Figures(
        tokens_per_s=values.get("throughput.output_tokens_per_s", 100.0),
        j_per_token=values.get("energy.j_per_output_token", 1.0 if reads_energy else None),
        metrics=tuple((name, value) for name, value in values.items() if name not in headline),
    )


def config_hash(config: ExperimentConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


def pct(value: float) -> Percentiles:
    return Percentiles(
        n=REQUESTS, mean=value, p50=value, p90=value, p99=value, min=value, max=value
    )


def make_result(context: RunContext, config: ExperimentConfig, fig: Figures) -> ExperimentResult:
    result = _headline_result(context, config, fig)
    return with_metrics(result, fig.metrics) if fig.metrics else result


def _headline_result(
    context: RunContext, config: ExperimentConfig, fig: Figures
) -> ExperimentResult:
    window_s = OUTPUT_TOKENS / fig.tokens_per_s
    if fig.j_per_token is None:
        energy = Energy(
            gpu_source="unavailable",
            cpu_source="unavailable",
            gpu_j=None,
            gpu_j_reason=NO_ENERGY,
            cpu_package_j=None,
            cpu_package_j_reason="RAPL not readable",
            dram_j=None,
            dram_j_reason="RAPL not readable",
            baseline_gpu_w=None,
            baseline_gpu_w_reason=NO_ENERGY,
            baseline_cpu_w=None,
            baseline_cpu_w_reason="RAPL not readable",
            gpu_adjusted_j=None,
            gpu_adjusted_j_reason=NO_ENERGY,
            total_j=None,
            total_j_reason="no energy source readable",
            j_per_output_token=None,
            j_per_output_token_reason=NO_ENERGY,
            adjusted_j_per_output_token=None,
            adjusted_j_per_output_token_reason=NO_ENERGY,
            output_tokens_per_j=None,
            output_tokens_per_j_reason=NO_ENERGY,
            mean_gpu_power_w=None,
            mean_gpu_power_w_reason=NO_ENERGY,
            peak_gpu_power_w=None,
            peak_gpu_power_w_reason=NO_ENERGY,
            load_gpu_j=None,
            load_gpu_j_reason=NO_ENERGY,
            engine_build_gpu_j=None,
            engine_build_gpu_j_reason=NO_BUILD,
            validity=Validity.of([ValidityReason(code="energy_unavailable", detail=NO_ENERGY)]),
        )
        device = "cpu"
        gpus: list[GpuInfo] = []
    else:
        gpu_j = fig.j_per_token * OUTPUT_TOKENS
        baseline_w = 50.0
        adjusted = gpu_j - baseline_w * window_s
        energy = Energy(
            gpu_source="nvml_energy_counter",
            cpu_source="unavailable",
            gpu_j=gpu_j,
            per_gpu_j=[gpu_j],
            cpu_package_j=None,
            cpu_package_j_reason="RAPL not readable",
            dram_j=None,
            dram_j_reason="RAPL not readable",
            baseline_gpu_w=baseline_w,
            baseline_cpu_w=None,
            baseline_cpu_w_reason="RAPL not readable",
            gpu_adjusted_j=adjusted,
            total_j=gpu_j,
            total_parts=["gpu"],
            j_per_output_token=fig.j_per_token,
            adjusted_j_per_output_token=adjusted / OUTPUT_TOKENS,
            output_tokens_per_j=1 / fig.j_per_token,
            mean_gpu_power_w=gpu_j / window_s,
            peak_gpu_power_w=gpu_j / window_s * 1.2,
            load_gpu_j=100.0,
            engine_build_gpu_j=None,
            engine_build_gpu_j_reason=NO_BUILD,
            sample_interval_ms=100.0,
            integral_gpu_j=gpu_j / fig.counter_integral_ratio,
            integral_gpu_j_reason=None,
            counter_integral_ratio=fig.counter_integral_ratio,
            counter_integral_ratio_reason=None,
            largest_sample_gap_ms=110.0,
            largest_sample_gap_ms_reason=None,
            counter_update_ms=100.0,
            counter_update_ms_reason=None,
            instrument_uncertainty_j=gpu_j * fig.uncertainty_pct / 100,
            instrument_uncertainty_j_reason=None,
            instrument_uncertainty_pct=fig.uncertainty_pct,
            instrument_uncertainty_pct_reason=None,
            adjusted_uncertainty_j=gpu_j * fig.uncertainty_pct / 100 * 1.5,
            adjusted_uncertainty_j_reason=None,
            uncertainty_terms_j={"edge": gpu_j * fig.uncertainty_pct / 100},
            validity=Validity.of(
                [ValidityReason(code=code, detail="synthetic") for code in fig.invalid]  # type: ignore[arg-type]
            ),
            cpu_validity=Validity.of(
                [ValidityReason(code="energy_unavailable", detail="RAPL not readable")]
            ),
        )
        device = "cuda"
        gpus = [
            GpuInfo(
                index=0,
                name="NVIDIA H100 80GB HBM3",
                uuid="GPU-0",
                memory_total_mb=81559.0,
                power_limit_w=700.0,
                persistence_mode=True,
            )
        ]
    on_gpu = device == "cuda"
    return ExperimentResult(
        context=context,
        config=config,
        started_at="2025-01-01T00:00:00Z",
        finished_at="2025-01-01T00:01:00Z",
        environment=Environment(
            llem_version="0.1.0",
            python_version="3.11.9",
            os="Linux",
            cpu_model="Test CPU",
            cpu_count=16,
            hostname="abc123",
            container_id="abc123",
            gpus=gpus,
            driver_version="550.54" if on_gpu else None,
            cuda_version="12.4" if on_gpu else None,
            torch_version="2.4.0",
            transformers_version="4.45.0",
            backend_engine="transformers",
            backend_engine_version="4.45.0",
            device=device,
        ),
        timings=Timings(
            engine_build_s=None,
            engine_build_s_reason=NO_BUILD,
            load_s=2.0,
            tokenisation_s=0.1,
            baseline_s=0.0,
            warmup_s=1.0,
            warmup_batches=3,
            warmup_converged=True,
            warmup_final_cv=0.01,
            window_s=window_s,
            total_s=window_s + 5,
        ),
        tokens=TokenCounts(
            requests=REQUESTS,
            passes=1,
            input_tokens=1280,
            output_tokens=OUTPUT_TOKENS,
            batches=REQUESTS,
        ),
        throughput=Throughput(
            output_tokens_per_s=fig.tokens_per_s,
            total_tokens_per_s=fig.tokens_per_s * 2.28,
            requests_per_s=REQUESTS / window_s,
        ),
        latency=Latency(
            request_ms=pct(window_s * 1000 / REQUESTS),
            ttft_ms=pct(fig.ttft_p50_ms),
            itl_ms=pct(fig.itl_p50_ms),
            method="streamer callback timestamps",
        ),
        energy=energy,
        memory=Memory(
            peak_allocated_mb=1000.0 if on_gpu else None,
            peak_allocated_mb_reason=None if on_gpu else "no CUDA device",
            peak_reserved_mb=1200.0 if on_gpu else None,
            peak_reserved_mb_reason=None if on_gpu else "no CUDA device",
            nvml_peak_used_mb=1500.0 if on_gpu else None,
            nvml_peak_used_mb_reason=None if on_gpu else "no NVIDIA GPU",
            process_peak_rss_mb=800.0,
        ),
        telemetry=GpuTelemetry(
            utilisation_mean_pct=90.0 if on_gpu else None,
            utilisation_mean_pct_reason=None if on_gpu else "no NVIDIA GPU",
            temperature_start_c=40.0 if on_gpu else None,
            temperature_start_c_reason=None if on_gpu else "no NVIDIA GPU",
            temperature_end_c=55.0 if on_gpu else None,
            temperature_end_c_reason=None if on_gpu else "no NVIDIA GPU",
            temperature_max_c=56.0 if on_gpu else None,
            temperature_max_c_reason=None if on_gpu else "no NVIDIA GPU",
            sm_clock_mean_mhz=1980.0 if on_gpu else None,
            sm_clock_mean_mhz_reason=None if on_gpu else "no NVIDIA GPU",
            samples=100 if on_gpu else 0,
            timeseries_file="timeseries.parquet" if on_gpu else None,
        ),
        flops=Flops(
            parameters=1_000_000,
            total=2e6 * OUTPUT_TOKENS,
            per_output_token=2e6,
            method="2 x parameters per token",
        ),
        warnings=[QualityWarning(code=code, message=f"{code} seen") for code in fig.warnings],  # type: ignore[arg-type]
    )


QUANTILES = ("min", "p50", "p90", "p99", "max")
# The sections only some runs have, as a run that has them with no figure of note would hold
# them: the base a metric of theirs is set over.
NO_SLO = "no SLO given"
SECTION_BASES: dict[str, dict[str, Any]] = {
    "serving": {
        "target_request_rate": 8.0,
        "achieved_request_rate": 8.0,
        "send_lag_ms": pct(1.0).model_dump(),
        "requests_sent": REQUESTS,
        "requests_completed": REQUESTS,
        "requests_failed": 0,
        "warmup_requests": 0,
        "steady_start_s": 0.0,
        "steady_end_s": 10.0,
        "steady_rule": "synthetic",
        "peak_in_flight": 4,
        "steady_level_in_flight": 4.0,
        "load_duration_s": 10.0,
        "tpot_ms": pct(10.0).model_dump(),
        "goodput_requests_per_s": None,
        "goodput_requests_per_s_reason": NO_SLO,
        "goodput_fraction": None,
        "goodput_fraction_reason": NO_SLO,
        "j_per_request": None,
        "j_per_request_reason": NO_ENERGY,
        "j_per_slo_request": None,
        "j_per_slo_request_reason": NO_SLO,
        "j_per_slo_output_token": None,
        "j_per_slo_output_token_reason": NO_SLO,
        "adjusted_j_per_request": None,
        "adjusted_j_per_request_reason": NO_ENERGY,
        "attribution": "synthetic",
        "server": "synthetic",
        "server_ready_s": 1.0,
        "slices_file": "slices.parquet",
        "requests_file": "requests.parquet",
        "server_metrics_file": None,
        "server_metrics_file_reason": "synthetic",
    },
    "max_rate": {
        "max_rate": None,
        "max_rate_reason": "no probed rate met the SLOs",
        "stage": None,
        "first_failed_rate": None,
        "goodput_bound": 0.99,
        "tolerance": 0.1,
        "probes": 1,
        "method": "synthetic",
    },
}


def with_metrics(
    result: ExperimentResult, metrics: tuple[tuple[str, float], ...]
) -> ExperimentResult:
    """`result` with each catalogue column set to its value (and its reason cleared); a section
    the result lacks (serving, max_rate) is added from `SECTION_BASES`. Setting one quantile of
    a distribution moves the others it would cross, as a sample's quantiles never cross."""
    data = result.model_dump(mode="json")
    for column, value in metrics:
        section, name, *stat = column.split(".")
        if data.get(section) is None:
            data[section] = dict(SECTION_BASES[section])
        fields = data[section]
        if stat:
            fields[name] = _with_statistic(fields.get(name), stat[0], value)
        else:
            fields[name] = value
        if f"{name}_reason" in fields:
            fields[f"{name}_reason"] = None
    return ExperimentResult.model_validate(data)


def _with_statistic(percentiles: dict[str, Any] | None, stat: str, value: float) -> dict[str, Any]:
    out = dict(percentiles) if percentiles is not None else pct(value).model_dump()
    out[stat] = value
    if stat in QUANTILES:
        at = QUANTILES.index(stat)
        for below in QUANTILES[:at]:
            out[below] = min(out[below], value)
        for above in QUANTILES[at + 1 :]:
            out[above] = max(out[above], value)
    return out


FiguresFor = Callable[[int, int], "Figures | str | None"]


def write_study(
    root: Path,
    configs: list[tuple[dict[str, Any], ExperimentConfig]],
    cycles: int,
    figures: FiguresFor,
    *,
    study_id: str = "study-1",
    study_name: str = "test-study",
    study_yaml: str = "name: test-study\n",
) -> Path:
    """A study folder with `cycles` runs per configuration, interleaved cycle by cycle.

    `figures(config_index, cycle)` returns the run's Figures (completed), a string (failed with
    that error message) or None (still pending).
    """
    study_dir = root / study_id
    (study_dir / "experiments").mkdir(parents=True)
    plan: list[PlannedRun] = []
    for cycle in range(cycles):
        for config_index, (swept, config) in enumerate(configs):
            digest = config_hash(config)
            index = len(plan)
            plan.append(
                PlannedRun(
                    run_index=index,
                    run_id=run_dir_name(index, digest, cycle),
                    config_hash=digest,
                    config_index=config_index,
                    cycle=cycle,
                    swept=swept,
                    config=config,
                )
            )
    atomic_write_json(study_dir / "plan.json", [p.model_dump(mode="json") for p in plan])
    (study_dir / "study.yaml").write_text(study_yaml, encoding="utf-8")
    header = StudyRecord(
        study_id=study_id,
        study_name=study_name,
        design_hash="d" * 64,
        created_at="2025-01-01T00:00:00Z",
        status="completed",
        llem_version="0.1.0",
    )
    with Manifest.create(study_dir, header) as manifest:
        for planned in plan:
            outcome = figures(planned.config_index, planned.cycle)
            record = _record(study_dir, planned, outcome, study_id, study_name)
            manifest.add_runs([record])
    return study_dir


def _record(
    study_dir: Path,
    planned: PlannedRun,
    outcome: Figures | str | None,
    study_id: str,
    study_name: str,
) -> RunRecord:
    base = RunRecord(
        run_id=planned.run_id,
        run_index=planned.run_index,
        config_hash=planned.config_hash,
        cycle=planned.cycle,
        backend=planned.config.backend,
    )
    if outcome is None:
        return base
    work = study_dir / "experiments" / planned.run_id
    work.mkdir()
    image = {
        "image_ref": f"llem/{planned.config.backend}:test",
        "image_id": "sha256:" + "a" * 64,
        "image_digest": f"llem/{planned.config.backend}@sha256:" + "b" * 64,
    }
    if isinstance(outcome, str):
        atomic_write_json(work / WorkPaths.ERROR, ErrorReport(type="RuntimeError", message=outcome))
        return base.model_copy(
            update={
                "status": "failed",
                "outcome": "failed",
                "error_type": "RuntimeError",
                "error": outcome,
                **image,
            }
        )
    context = RunContext(
        study_id=study_id,
        study_name=study_name,
        run_id=planned.run_id,
        run_index=planned.run_index,
        config_hash=planned.config_hash,
        cycle=planned.cycle,
        **image,
    )
    result = make_result(context, planned.config, outcome)
    atomic_write_json(work / WorkPaths.RESULT, result)
    return base.model_copy(
        update={
            "status": "completed",
            "outcome": "completed",
            "result_path": f"experiments/{planned.run_id}/{WorkPaths.RESULT}",
            **image,
        }
    )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def pytorch_config(batch_size: int, model: str = "tiny-model") -> ExperimentConfig:
    return ExperimentConfig(model=model, pytorch={"batch_size": batch_size})  # type: ignore[arg-type]


# The standard study: batch sizes 1 and 4 over 3 cycles; batch 4's last cycle failed.
# batch 1: J/token 0.50, 0.51, 0.52 (mean 0.51, std 0.01); tok/s 100, 101, 102
# batch 4: J/token 0.25, 0.26 (mean 0.255);                 tok/s 200, 201
OOM = "CUDA out of memory"


def standard_figures(config_index: int, cycle: int) -> Figures | str | None:
    if config_index == 1 and cycle == 2:
        return OOM
    return Figures(
        tokens_per_s=100.0 * (config_index + 1) + cycle,
        j_per_token=0.5 / (config_index + 1) + 0.01 * cycle,
    )


def standard_study(root: Path, study_id: str = "study-1") -> Path:
    configs = [({"pytorch.batch_size": b}, pytorch_config(b)) for b in (1, 4)]
    return write_study(root, configs, 3, standard_figures, study_id=study_id)


def cpu_study(root: Path, study_id: str = "cpu-study") -> Path:
    """Two configurations on a CPU-only machine: energy is null with a reason everywhere."""
    configs = [({"pytorch.batch_size": b}, pytorch_config(b)) for b in (1, 2)]
    return write_study(
        root,
        configs,
        2,
        lambda ci, cy: Figures(tokens_per_s=10.0 * (ci + 1) + cy),
        study_id=study_id,
    )
