"""ExperimentResult: everything one experiment measured, written once as `result.json`.

Rules every field follows:
- the unit is in the name (`_s`, `_ms`, `_j`, `_w`, `_mb`, `_c`, `_mhz`, `_pct`) or stated;
- a figure that cannot be measured everywhere is nullable, and a `*_reason` sibling says why it
  is null; `Figures` enforces that exactly one of the two is set, for every such pair;
- every measured figure names the method that produced it.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from llenergymeasure.contract.baseline import BaselineOrigin, IdleBaseline
from llenergymeasure.contract.config import ExperimentConfig, Strict
from llenergymeasure.contract.run import RunContext
from llenergymeasure.contract.validity import Validity, rule_reason

RESULT_SCHEMA_VERSION = 1


@cache
def value_reason_pairs(model: type[BaseModel]) -> tuple[str, ...]:
    """The figures of `model` that have a `<name>_reason` sibling."""
    fields = model.model_fields
    return tuple(name for name in fields if f"{name}_reason" in fields)


class Figures(Strict):
    """A section of figures: each one with a `<name>_reason` sibling holds exactly one of the
    two, a measured value or the reason it is null (found from the fields, never listed)."""

    @model_validator(mode="after")
    def _value_or_reason(self) -> Figures:
        for name in value_reason_pairs(type(self)):
            value = getattr(self, name)
            reason = getattr(self, f"{name}_reason")
            if (value is None) == (reason is None):
                state = "both set" if value is not None else "both null"
                raise ValueError(
                    f"{name} and {name}_reason are {state}: a null figure needs a reason, "
                    "a measured one must not have one"
                )
        return self


class Percentiles(Strict):
    """Summary of a distribution of per-request or per-token samples (unit given by the field)."""

    n: int = Field(ge=1, description="Number of samples.")
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Percentiles:
        if not (self.min <= self.p50 <= self.p90 <= self.p99 <= self.max):
            raise ValueError("percentiles must satisfy min <= p50 <= p90 <= p99 <= max")
        return self


class GpuInfo(Strict):
    index: int
    name: str
    uuid: str
    memory_total_mb: float
    power_limit_w: float | None = Field(description="Enforced power limit, W.")
    persistence_mode: bool | None
    mig_mode: bool | None = Field(
        None, description="MIG enabled: energy is the physical GPU's, not a slice's."
    )


class Environment(Strict):
    llem_version: str
    python_version: str
    os: str
    cpu_model: str
    cpu_count: int
    hostname: str
    container_id: str | None = Field(None, description="Container's short id (its hostname).")
    gpus: list[GpuInfo] = Field(default_factory=list)
    driver_version: str | None
    cuda_version: str | None = Field(description="CUDA runtime the engine was built with.")
    torch_version: str | None
    transformers_version: str | None
    backend_engine: str = Field(description="Engine that generated, e.g. 'transformers'.")
    backend_engine_version: str | None
    backend_engine_arguments: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description="What the engine was started with beyond the config: derived values "
        "(e.g. vLLM's max_model_len) and the environment switches it read.",
    )
    device: Literal["cuda", "cpu"]


THERMAL_NOT_ASKED = "not asked for (warmup.thermal_max_s 0)"


class Timings(Figures):
    engine_build_s: float | None = Field(
        description="Compiling an engine (TensorRT-LLM) before the load, metered apart from it."
    )
    engine_build_s_reason: str | None = None
    load_s: float = Field(ge=0, description="Model (or engine) load, wall clock.")
    tokenisation_s: float = Field(
        ge=0, description="Loading the tokenizer and pre-tokenising the prompt set."
    )
    baseline_s: float = Field(
        ge=0,
        description="Idle-power reading; 0 when disabled or reused (energy.baseline_reused_from).",
    )
    warmup_s: float = Field(ge=0)
    warmup_batches: int = Field(ge=0)
    warmup_converged: bool | None = Field(
        description="Latency CV fell below the bound before the cap was reached; null in "
        "serving mode, whose warm-up ends where the steady-state rule says (no CV check)."
    )
    warmup_final_cv: float | None = Field(description="Latency CV of the last warmup window.")
    warmup_thermal_s: float | None = Field(
        None,
        description="Of warmup_s, the part spent until the GPU temperature was steady "
        "(warmup.thermal_max_s), s.",
    )
    warmup_thermal_s_reason: str | None = THERMAL_NOT_ASKED
    warmup_thermal_settled: bool | None = Field(
        None, description="The temperature rise fell within warmup.thermal_rise_c in time."
    )
    warmup_thermal_settled_reason: str | None = THERMAL_NOT_ASKED
    warmup_thermal_rise_c: float | None = Field(
        None, description="The last trailing temperature rise read in that warm-up, C."
    )
    warmup_thermal_rise_c_reason: str | None = THERMAL_NOT_ASKED
    window_s: float = Field(gt=0, description="Measured window, CUDA-synchronised at both edges.")
    total_s: float = Field(ge=0, description="Experiment process start to result written.")


class TokenCounts(Strict):
    requests: int = Field(ge=1, description="Requests generated in the measured window.")
    passes: int = Field(ge=1, description="Times the prompt set was run to fill min_window_s.")
    input_tokens: int = Field(ge=0, description="Prompt tokens in the window, padding excluded.")
    output_tokens: int = Field(
        ge=0, description="Tokens actually generated in the window, padding excluded."
    )
    batches: int = Field(ge=1)


class Throughput(Strict):
    output_tokens_per_s: float
    total_tokens_per_s: float = Field(description="(input + output) tokens per second.")
    requests_per_s: float


class Latency(Figures):
    request_ms: Percentiles = Field(description="End-to-end latency per request, ms.")
    ttft_ms: Percentiles | None = Field(description="Time to first token per request, ms.")
    ttft_ms_reason: str | None = None
    itl_ms: Percentiles | None = Field(description="Inter-token latency, ms.")
    itl_ms_reason: str | None = None
    method: str = Field(description="How per-token times were taken.")


# The reason of an audit figure a result from before the audit does not hold.
NOT_RECORDED = "not recorded (a result from before the energy audit)"
GpuEnergySource = Literal["nvml_energy_counter", "nvml_power_integral", "unavailable"]
CpuEnergySource = Literal["rapl", "unavailable"]


class Energy(Figures):
    """Energy over the measured window. GPU figures are summed over the container's GPUs."""

    gpu_source: GpuEnergySource
    cpu_source: CpuEnergySource
    gpu_j: float | None = Field(description="Raw GPU energy in the window, J.")
    gpu_j_reason: str | None = None
    per_gpu_j: list[float] | None = Field(None, description="Raw energy per GPU, J.")
    cpu_package_j: float | None = Field(description="RAPL CPU package energy, J.")
    cpu_package_j_reason: str | None = None
    dram_j: float | None = Field(description="RAPL DRAM energy, J.")
    dram_j_reason: str | None = None
    baseline_gpu_w: float | None = Field(
        description="Idle GPU power with the model and CUDA context loaded, W."
    )
    baseline_gpu_w_reason: str | None = None
    baseline_cpu_w: float | None = Field(description="Idle CPU package (+DRAM) power, W.")
    baseline_cpu_w_reason: str | None = None
    idle_baseline: IdleBaseline | None = Field(
        None, description="The idle baseline the baseline figures are from: this run's, or reused."
    )
    baseline_reused_from: BaselineOrigin | None = Field(
        None, description="Reused (baseline.reuse_s): the run that measured it, and its age."
    )
    baseline_reuse_refused: str | None = Field(
        None,
        description="Why a baseline offered for reuse was not used (this run measured its own).",
    )
    gpu_adjusted_j: float | None = Field(
        description="gpu_j minus baseline_gpu_w x window_s: energy attributable to the work, J."
    )
    gpu_adjusted_j_reason: str | None = None
    total_j: float | None = Field(
        description="gpu_j + cpu_package_j + dram_j over the parts measured (see total_parts)."
    )
    total_j_reason: str | None = None
    total_parts: list[Literal["gpu", "cpu_package", "dram"]] = Field(default_factory=list)
    j_per_output_token: float | None = Field(description="gpu_j / output_tokens.")
    j_per_output_token_reason: str | None = None
    adjusted_j_per_output_token: float | None = Field(description="gpu_adjusted_j / output_tokens.")
    adjusted_j_per_output_token_reason: str | None = None
    output_tokens_per_j: float | None = Field(description="output_tokens / gpu_j.")
    output_tokens_per_j_reason: str | None = None
    mean_gpu_power_w: float | None = Field(description="gpu_j / window_s, W.")
    mean_gpu_power_w_reason: str | None = None
    peak_gpu_power_w: float | None = Field(description="Highest sampled GPU power, W.")
    peak_gpu_power_w_reason: str | None = None
    load_gpu_j: float | None = Field(description="GPU energy while loading the model, J.")
    load_gpu_j_reason: str | None = None
    engine_build_gpu_j: float | None = Field(
        description="GPU energy while compiling the engine, J (apart from load and window)."
    )
    engine_build_gpu_j_reason: str | None = None
    sample_interval_ms: float | None = Field(None, description="Power sampler period, ms.")
    power_sample_method: str | None = Field(
        None, description="How power samples were read (NVML call or field); null without NVML."
    )
    integral_gpu_j: float | None = Field(
        None, description="The sampled power's integral over the same window, J (the check)."
    )
    integral_gpu_j_reason: str | None = NOT_RECORDED
    counter_integral_ratio: float | None = Field(
        None, description="Counter energy / power integral over the same window."
    )
    counter_integral_ratio_reason: str | None = NOT_RECORDED
    largest_sample_gap_ms: float | None = Field(
        None, description="Longest time between two power samples across the window, ms."
    )
    largest_sample_gap_ms_reason: str | None = NOT_RECORDED
    counter_update_ms: float | None = Field(
        None,
        description="How often the NVML energy counter changed, measured while idle (median "
        "time between changes of a fast poll), ms.",
    )
    counter_update_ms_reason: str | None = NOT_RECORDED
    instrument_uncertainty_j: float | None = Field(
        None,
        description="Standard uncertainty of gpu_j from the instrument: the window-edge term "
        "and, for an integral, its sampling term (see uncertainty_terms_j), J.",
    )
    instrument_uncertainty_j_reason: str | None = NOT_RECORDED
    instrument_uncertainty_pct: float | None = Field(
        None, description="instrument_uncertainty_j / gpu_j, %."
    )
    instrument_uncertainty_pct_reason: str | None = NOT_RECORDED
    adjusted_uncertainty_j: float | None = Field(
        None,
        description="Standard uncertainty of gpu_adjusted_j: the instrument's and the idle "
        "baseline's own spread carried over the window, J.",
    )
    adjusted_uncertainty_j_reason: str | None = NOT_RECORDED
    uncertainty_terms_j: dict[str, float] = Field(
        default_factory=dict,
        description="The budget's terms (standard uncertainties, J): edge, integral_sampling, "
        "baseline.",
    )
    validity: Validity = Field(
        default_factory=Validity.not_judged,
        description="Whether the GPU figures (gpu_j and all derived from it) can be trusted.",
    )
    cpu_validity: Validity = Field(
        default_factory=Validity.not_judged,
        description="Whether the RAPL figures (cpu_package_j, dram_j) can be trusted.",
    )

    @model_validator(mode="after")
    def _gpu_source(self) -> Energy:
        if (self.gpu_source == "unavailable") != (self.gpu_j is None):
            raise ValueError("gpu_source is 'unavailable' exactly when gpu_j is null")
        return self


class Memory(Figures):
    peak_allocated_mb: float | None = Field(description="torch.cuda.max_memory_allocated, MB.")
    peak_allocated_mb_reason: str | None = None
    peak_reserved_mb: float | None = Field(description="torch.cuda.max_memory_reserved, MB.")
    peak_reserved_mb_reason: str | None = None
    nvml_peak_used_mb: float | None = Field(description="Highest NVML memory-used sample, MB.")
    nvml_peak_used_mb_reason: str | None = None
    process_peak_rss_mb: float = Field(
        description="Peak resident memory of the experiment process, MB."
    )


class GpuTelemetry(Figures):
    """Summary of the sampler's timeline over the measured window (all GPUs)."""

    utilisation_mean_pct: float | None
    utilisation_mean_pct_reason: str | None = None
    temperature_start_c: float | None
    temperature_start_c_reason: str | None = None
    temperature_end_c: float | None
    temperature_end_c_reason: str | None = None
    temperature_max_c: float | None
    temperature_max_c_reason: str | None = None
    sm_clock_mean_mhz: float | None
    sm_clock_mean_mhz_reason: str | None = None
    throttle_reasons: list[str] = Field(
        default_factory=list, description="NVML clock-throttle reasons seen during the window."
    )
    samples: int = Field(ge=0)
    timeseries_file: str | None = Field(description="Work-folder file with the samples.")


class Flops(Figures):
    parameters: int = Field(ge=0, description="Model parameters counted from the weights.")
    total: float | None = Field(description="Estimated floating-point operations in the window.")
    total_reason: str | None = None
    per_output_token: float | None
    per_output_token_reason: str | None = None
    method: str = Field(description="How the estimate was made.")


class ServingFigures(Figures):
    """What only serving mode measures (`mode: serving`). The result's other sections hold the
    steady-state window's figures: timings.window_s its length, tokens/throughput/energy its
    tokens and energy, latency the requests sent inside it."""

    target_request_rate: float | None = Field(
        description="Configured arrivals per second; null for 'inf' (all at once)."
    )
    target_request_rate_reason: str | None = None
    achieved_request_rate: float = Field(
        ge=0, description="Measured requests sent per second, first to last send."
    )
    send_lag_ms: Percentiles | None = Field(
        description="The generator's own delay: actual send after the arrival time (or after "
        "the concurrency cap released it), ms."
    )
    send_lag_ms_reason: str | None = None
    requests_sent: int = Field(ge=0, description="Measured requests sent (warm-up excluded).")
    requests_completed: int = Field(ge=0, description="Of those, answered in full.")
    requests_failed: int = Field(ge=0, description="Of those, failed (error or cut stream).")
    warmup_requests: int = Field(ge=0, description="Requests excluded as warm-up.")
    steady_start_s: float = Field(description="Window start, s since sending began.")
    steady_end_s: float = Field(description="Window end, s since sending began.")
    steady_rule: str = Field(description="How the steady state was chosen.")
    peak_in_flight: int = Field(ge=0)
    steady_level_in_flight: float = Field(
        ge=0, description="Mean requests in flight over the second half of sending."
    )
    load_duration_s: float = Field(ge=0, description="First send to last answer, s.")
    tpot_ms: Percentiles | None = Field(
        description="Time per output token after the first, (E2E - TTFT)/(n - 1), ms."
    )
    tpot_ms_reason: str | None = None
    slo: dict[str, float] = Field(
        default_factory=dict, description="The SLOs given (ttft_ms, tpot_ms, e2e_ms)."
    )
    goodput_requests_per_s: float | None = Field(
        description="Requests completed in the window meeting every SLO, per second."
    )
    goodput_requests_per_s_reason: str | None = None
    goodput_fraction: float | None = Field(
        description="Of the requests completed in the window, the share meeting every SLO."
    )
    goodput_fraction_reason: str | None = None
    j_per_request: float | None = Field(
        description="Window GPU energy per request: J per output token x mean output tokens."
    )
    j_per_request_reason: str | None = None
    j_per_slo_request: float | None = Field(
        description="Window GPU energy per request meeting every SLO: the energy shared by only "
        "those requests' tokens in the window, x their mean output tokens."
    )
    j_per_slo_request_reason: str | None = None
    j_per_slo_output_token: float | None = Field(
        description="Window GPU energy / output tokens in the window of SLO-meeting requests."
    )
    j_per_slo_output_token_reason: str | None = None
    adjusted_j_per_request: float | None = Field(
        description="As j_per_request, from baseline-adjusted energy."
    )
    adjusted_j_per_request_reason: str | None = None
    attribution: str = Field(description="How window energy is shared among requests.")
    server: str = Field(description="The server measured, and how it was started.")
    server_ready_s: float = Field(
        ge=0,
        description="Server start until /health answered and a one-token completion came back, s.",
    )
    slices_file: str = Field(description="Work-folder file: energy and load per time slice.")
    requests_file: str = Field(description="Work-folder file: one row per request.")
    server_metrics_file: str | None = Field(
        description="Work-folder file: the server's queue and KV-cache gauges over time."
    )
    server_metrics_file_reason: str | None = None
    figure_windows: dict[str, str] = Field(
        default_factory=dict,
        description="The window each figure of this result (or stage) covers, by section or "
        "`section.field`; the most specific entry applies (`SERVING_WINDOWS`).",
    )


STEADY_WINDOW = "steady state: the measured window (timings.window_s)"
SENDING = "sending: first to last send of the measured requests (warm-up excluded)"
# Serving figures do not all cover one window; each is named here, and a table that shows
# figures side by side shows those of one window or says which each one is.
SERVING_WINDOWS: dict[str, str] = {
    "timings.window_s": STEADY_WINDOW,
    "tokens": "requests completed inside the steady state; output tokens streamed inside it",
    "throughput": STEADY_WINDOW,
    "energy": STEADY_WINDOW,
    "telemetry": STEADY_WINDOW,
    "latency": "requests sent inside the steady state (every measured one when none was)",
    "serving.achieved_request_rate": SENDING,
    "serving.send_lag_ms": SENDING,
    "serving.requests_sent": SENDING,
    "serving.requests_completed": SENDING,
    "serving.requests_failed": SENDING,
    "serving.tpot_ms": "every completed measured request",
    "serving.peak_in_flight": SENDING,
    "serving.load_duration_s": "first send to last answer, warm-up included",
    "serving.goodput_requests_per_s": STEADY_WINDOW + "; requests completed inside it",
    "serving.goodput_fraction": STEADY_WINDOW + "; requests completed inside it",
    "serving.j_per_request": STEADY_WINDOW,
    "serving.j_per_slo_request": STEADY_WINDOW,
    "serving.j_per_slo_output_token": STEADY_WINDOW,
    "serving.adjusted_j_per_request": STEADY_WINDOW,
}


WarningCode = Literal[
    "window_too_short",
    "temperature_drift",
    "throttling",
    "other_gpu_processes",
    "persistence_mode_off",
    "energy_unavailable",
    "warmup_not_converged",
    "temperature_not_settled",
    "baseline_disabled",
    "concurrent_runs",
    "gpu_identity",
    "foreign_gpu_processes",
    "steady_state_short",
    "steady_state_not_reached",
    "send_lag",
    "requests_failed",
    "gpu_setting_clamped",
    "gpu_off_default",
]
HOST_WARNINGS: tuple[str, ...] = (
    "concurrent_runs",
    "foreign_gpu_processes",
    "gpu_setting_clamped",
    "gpu_off_default",
)
"""Warning codes the host adds after the run, from what only it saw."""


class QualityWarning(Strict):
    code: WarningCode
    message: str


# The figure sections of a result, and of each stage of a staged one.
FIGURE_SECTIONS = (
    "timings",
    "tokens",
    "throughput",
    "latency",
    "energy",
    "memory",
    "telemetry",
    "flops",
    "serving",
)
StageOutcome = Literal["completed", "stopped_early", "unmeasured", "server_died"]


class StageResult(Strict):
    """One stage of a staged serving run, with the same figure sections as a whole result,
    measured over the stage's own steady state (null where the stage did not complete)."""

    index: int = Field(ge=0)
    request_rate: float | None = Field(description="The stage's target rate; null for 'inf'.")
    max_concurrency: int | None = Field(description="Its cap on requests in flight.")
    n_requests: int | None = Field(description="Requests it was to send, warm-up included.")
    duration_s: float | None = Field(description="Its sending time limit, s.")
    outcome: StageOutcome
    detail: str | None = Field(
        description="Why it stopped early, has no figures or ended the run; null otherwise."
    )
    met_slo: bool | None = Field(
        description="find_max_rate: its goodput fraction reached the bound with no request "
        "failed; null in a plain stage list."
    )
    began_s: float = Field(
        ge=0, description="When its sending began, s after the load phase began (stage 0: ~0)."
    )
    timings: Timings | None = None
    tokens: TokenCounts | None = None
    throughput: Throughput | None = None
    latency: Latency | None = None
    energy: Energy | None = None
    memory: Memory | None = None
    telemetry: GpuTelemetry | None = None
    flops: Flops | None = None
    serving: ServingFigures | None = None
    warnings: list[QualityWarning] = Field(default_factory=list)


class MaxRateFinding(Figures):
    """What `serving.find_max_rate` found; every probed stage is in `stages`."""

    max_rate: float | None = Field(
        description="The highest probed rate whose stage met every SLO, req/s (target)."
    )
    max_rate_reason: str | None = None
    stage: int | None = Field(description="The stage that ran at that rate.")
    first_failed_rate: float | None = Field(
        description="The lowest probed rate above it that did not meet the SLOs, req/s."
    )
    goodput_bound: float = Field(description="The goodput fraction a stage had to reach (0-1).")
    tolerance: float = Field(description="Relative gap at which the search stopped narrowing.")
    probes: int = Field(ge=1, description="Stages the search ran.")
    method: str = Field(description="How the rates were chosen and a stage judged.")


class ExperimentResult(Strict):
    schema_version: int = RESULT_SCHEMA_VERSION
    context: RunContext
    config: ExperimentConfig
    started_at: str = Field(description="UTC, ISO 8601.")
    finished_at: str = Field(description="UTC, ISO 8601.")
    environment: Environment
    timings: Timings
    tokens: TokenCounts
    throughput: Throughput
    latency: Latency
    energy: Energy
    memory: Memory
    telemetry: GpuTelemetry
    flops: Flops
    serving: ServingFigures | None = Field(None, description="mode: serving only.")
    warnings: list[QualityWarning] = Field(default_factory=list)
    stages: list[StageResult] = Field(
        default_factory=list,
        description="A staged serving run's stages; the sections above are the headline stage's.",
    )
    headline_stage: int | None = Field(
        None,
        description="The stage the sections above hold: find_max_rate's highest rate meeting "
        "the SLOs (else its first stage that completed), or a stage list's last completed stage.",
    )
    max_rate: MaxRateFinding | None = Field(None, description="serving.find_max_rate only.")

    @property
    def failed_stage(self) -> StageResult | None:
        """The stage the server died in, when one did (the stages before it are kept)."""
        return next((stage for stage in self.stages if stage.outcome == "server_died"), None)

    def with_host_warning(self, code: str, message: str) -> ExperimentResult:
        """This result with one more warning, added by the host (`HOST_WARNINGS`)."""
        if code not in HOST_WARNINGS:
            raise ValueError(f"{code!r} is not a warning the host adds")
        warning = QualityWarning(code=code, message=message)  # type: ignore[arg-type]
        update: dict[str, object] = {"warnings": [*self.warnings, warning]}
        if code == "foreign_gpu_processes":  # the GPU energy is not this run's alone
            why = rule_reason("foreign_processes", message)

            def flagged(energy: Energy) -> Energy:
                return energy.model_copy(update={"validity": energy.validity.plus(why)})

            update["energy"] = flagged(self.energy)
            update["stages"] = [
                stage.model_copy(update={"energy": flagged(stage.energy)})
                if stage.energy
                else stage
                for stage in self.stages
            ]
        return self.model_copy(update=update)

    def with_host_shared(self, concurrent_runs: list[str]) -> ExperimentResult:
        """This result measured while other runs were in flight on the same host: host-wide
        figures (RAPL CPU package and DRAM, which meter every process) are null with that
        reason, never split by a guess, and the warning `concurrent_runs` names the runs.
        Per-GPU figures are the run's own and stay."""
        reason = f"host shared with {len(concurrent_runs)} concurrent run(s)"
        energy = self.energy
        gpu = energy.gpu_j is not None
        shared = energy.model_copy(
            update={
                "cpu_source": "unavailable",
                "cpu_package_j": None,
                "cpu_package_j_reason": reason,
                "dram_j": None,
                "dram_j_reason": reason,
                "baseline_cpu_w": None,
                "baseline_cpu_w_reason": reason,
                "total_j": energy.gpu_j if gpu else None,
                "total_j_reason": None if gpu else f"GPU: {energy.gpu_j_reason}; CPU: {reason}",
                "total_parts": ["gpu"] if gpu else [],
                "cpu_validity": Validity.of(
                    [rule_reason("host_shared", f"{len(concurrent_runs)} concurrent run(s)")]
                ),
            }
        )
        result = self.model_copy(update={"energy": Energy.model_validate(shared.model_dump())})
        runs = ", ".join(concurrent_runs)
        return result.with_host_warning(
            "concurrent_runs", f"{reason} ({runs}); CPU and DRAM energy are not this run's alone"
        )

    @model_validator(mode="after")
    def _known_version(self) -> ExperimentResult:
        if self.schema_version != RESULT_SCHEMA_VERSION:
            raise ValueError(
                f"result schema_version {self.schema_version} is not the supported "
                f"{RESULT_SCHEMA_VERSION}"
            )
        return self
