"""The metric catalogue: every figure the results summarise, with its unit, its labels and where
it is shown. One row per metric; the summary table, `results show`, `results compare`, the CV
flags, plots and the HTML report all read it. Every metric is summarised over a configuration's
cycles as mean, sample std, a 95 % bootstrap CI and the CV (`stats.summarise`); an energy metric's
CI also holds the instrument's uncertainty (`stats.with_instrument`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    column: str  # the flattened result field, e.g. "energy.j_per_output_token"
    label: str  # for people, in full
    unit: str
    short: str = ""  # a narrow column title (`results show`); "" where it is not shown there
    compared: bool = False  # in `results compare`
    cv_flagged: bool = False  # a CV above the bound flags the configuration
    in_report: bool = False  # in the HTML report's configuration table
    serving_only: bool = False  # shown only for studies with serving runs (mode: serving)
    # (the energy it is derived from, that energy's instrument uncertainty): both J columns; the
    # metric's own uncertainty is its value x their ratio (its CI then holds it, `stats`)
    uncertainty: tuple[str, str] | None = None
    # the window it covers: "window" (the measured window: a serving run's steady state) or
    # "sending" (first to last send); views say which where a row mixes them
    window: str = "window"

    @property
    def reads_gpu_energy(self) -> bool:
        """Derived from the GPU energy: as trustworthy as `energy.validity` says it is."""
        return self.uncertainty is not None


WINDOWS = {
    "window": "the measured window (serving: its steady state)",
    "sending": "first to last send of the measured requests",
}
GPU_U = ("energy.gpu_j", "energy.instrument_uncertainty_j")
ADJUSTED_U = ("energy.gpu_adjusted_j", "energy.adjusted_uncertainty_j")
TOTAL_U = ("energy.total_j", "energy.instrument_uncertainty_j")  # RAPL's parts: no budget


# Energy first, then speed, latency, memory, heat.
CATALOGUE: tuple[Metric, ...] = (
    Metric(
        "energy.j_per_output_token",
        "GPU energy per output token",
        "J/token",
        short="J/out-token",
        compared=True,
        cv_flagged=True,
        in_report=True,
        uncertainty=GPU_U,
    ),
    Metric(
        "energy.adjusted_j_per_output_token",
        "Baseline-adjusted J per output token",
        "J/token",
        in_report=True,
        uncertainty=ADJUSTED_U,
    ),
    Metric("energy.output_tokens_per_j", "Output tokens per joule", "token/J", uncertainty=GPU_U),
    Metric("energy.gpu_j", "GPU energy in the window", "J", uncertainty=GPU_U),
    Metric("energy.total_j", "GPU+CPU+DRAM energy in the window", "J", uncertainty=TOTAL_U),
    Metric("energy.mean_gpu_power_w", "Mean GPU power", "W", in_report=True, uncertainty=GPU_U),
    Metric(
        "throughput.output_tokens_per_s",
        "Output throughput",
        "token/s",
        short="tok/s",
        compared=True,
        cv_flagged=True,
        in_report=True,
    ),
    Metric("latency.request_ms.p50", "Request latency p50", "ms", in_report=True),
    Metric(
        "latency.ttft_ms.p50",
        "Time to first token p50",
        "ms",
        short="TTFT p50 ms",
        compared=True,
        cv_flagged=True,
        in_report=True,
    ),
    Metric("latency.ttft_ms.p99", "Time to first token p99", "ms"),
    Metric(
        "latency.itl_ms.p50",
        "Inter-token latency p50",
        "ms",
        short="ITL p50 ms",
        compared=True,
        cv_flagged=True,
        in_report=True,
    ),
    Metric("latency.itl_ms.p99", "Inter-token latency p99", "ms"),
    Metric("latency.request_ms.p99", "Request latency p99", "ms"),
    Metric(
        "serving.achieved_request_rate",
        "Achieved request rate (sent, first to last send)",
        "request/s",
        short="sent req/s",
        compared=True,
        in_report=True,
        serving_only=True,
        window="sending",
    ),
    Metric(
        "throughput.requests_per_s",
        "Request throughput (completed in the window)",
        "request/s",
        short="req/s",
        in_report=True,
        serving_only=True,  # shown beside goodput, over the same window
    ),
    Metric(
        "serving.goodput_requests_per_s",
        "Goodput (requests meeting every SLO)",
        "request/s",
        short="goodput",
        compared=True,
        in_report=True,
        serving_only=True,
    ),
    Metric(
        "serving.goodput_fraction",
        "Share of requests meeting every SLO",
        "fraction (0-1)",
        serving_only=True,
    ),
    Metric(
        "serving.j_per_request",
        "GPU energy per request",
        "J/request",
        compared=True,
        in_report=True,
        serving_only=True,
        uncertainty=GPU_U,
    ),
    Metric(
        "serving.j_per_slo_request",
        "GPU energy per SLO-meeting request",
        "J/request",
        short="J/SLO-req",
        compared=True,
        in_report=True,
        serving_only=True,
        uncertainty=GPU_U,
    ),
    Metric(
        "serving.j_per_slo_output_token",
        "GPU energy per SLO-meeting output token",
        "J/token",
        in_report=True,
        serving_only=True,
        uncertainty=GPU_U,
    ),
    Metric(
        "serving.tpot_ms.p50", "Time per output token p50", "ms", in_report=True, serving_only=True
    ),
    Metric("serving.send_lag_ms.p99", "Generator send lag p99", "ms", serving_only=True),
    Metric(
        "max_rate.max_rate",
        "Highest request rate meeting the SLOs (find_max_rate)",
        "request/s",
        short="max req/s",
        compared=True,
        in_report=True,
        serving_only=True,
    ),
    Metric("memory.peak_allocated_mb", "Peak allocated memory", "MB"),
    Metric("telemetry.temperature_max_c", "Highest GPU temperature", "°C"),
)
BY_COLUMN: dict[str, Metric] = {metric.column: metric for metric in CATALOGUE}
SHOWN = tuple(metric for metric in CATALOGUE if metric.short)
COMPARED = tuple(metric.column for metric in CATALOGUE if metric.compared)
CV_FLAGGED = tuple(metric.column for metric in CATALOGUE if metric.cv_flagged)
IN_REPORT = tuple(metric for metric in CATALOGUE if metric.in_report)


def for_study(metrics: tuple[Metric, ...], serving: bool) -> tuple[Metric, ...]:
    """The metrics a study's views show: serving ones only where it has serving runs."""
    return tuple(metric for metric in metrics if serving or not metric.serving_only)
