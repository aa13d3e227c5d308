"""One stage of a serving run as measured (a run without stages is one stage), and its own
figures and warnings: the serving section of its result, from its records and window energy."""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.contract.result import (
    SERVING_WINDOWS,
    Energy,
    Latency,
    QualityWarning,
    ServingFigures,
    StageOutcome,
)
from llenergymeasure.contract.serving import ServingConfig
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.experiment.measured import Measured
from llenergymeasure.experiment.metrics import summarise
from llenergymeasure.experiment.serving import figures
from llenergymeasure.experiment.serving.records import RequestRecord
from llenergymeasure.experiment.serving.window import SteadyState, requests_for_more_steady_s

LATENCY_METHOD = (
    "client timestamps (perf_counter) of the streamed response chunks on loopback (chat: the "
    "chunks carrying content): TTFT = "
    "first chunk - send, ITL = gaps between chunks, request = last chunk - send; over the "
    "measured requests sent inside the steady state"
)
STEADY_RULE = (
    "from when requests in flight (averaged over the last {smooth:g} s), after the warm-up, "
    "first reach {fraction} x their mean level over the second half of sending, until the "
    "last send (the drain); all sent at once: until in flight falls below {fraction} x peak"
)


@dataclass
class Server:
    """What a stage's figures say of the server."""

    description: str
    ready_s: float
    metrics_file: str | None


@dataclass
class StageRun:
    """A stage's requests (times in s since its own sending began) and what they gave."""

    index: int
    serving: ServingConfig  # the settings it ran with
    records: list[RequestRecord]
    zero: float  # perf_counter when its sending began
    began_s: float  # s after the first stage's sending began
    outcome: StageOutcome = "completed"
    detail: str | None = None
    window: SteadyState | None = None
    share: figures.Attribution | None = None
    good: figures.Goodput | None = None
    measured: Measured | None = None

    @property
    def failed_requests(self) -> int:
        return sum(1 for r in self.records if not r.warmup and not r.ok)

    def met(self, bound: float) -> bool:
        """Whether it met the SLOs: completed, goodput fraction >= bound, no request failed."""
        if self.outcome != "completed" or self.good is None or self.good.fraction is None:
            return False
        return self.good.fraction >= bound and self.failed_requests == 0

    def margin(self, bound: float) -> float | None:
        """goodput fraction - bound, where the stage measured one."""
        if self.outcome != "completed" or self.good is None or self.good.fraction is None:
            return None
        return self.good.fraction - bound


def latency(records: list[RequestRecord]) -> Latency:
    e2e = [r.e2e_s * 1000 for r in records if r.e2e_s is not None]
    ttft = [r.ttft_s * 1000 for r in records if r.ttft_s is not None]
    itl = [gap * 1000 for r in records for gap in r.itls_s]
    return Latency(
        request_ms=summarise(e2e),
        ttft_ms=summarise(ttft) if ttft else None,
        ttft_ms_reason=None if ttft else "no request streamed a token",
        itl_ms=summarise(itl) if itl else None,
        itl_ms_reason=None if itl else "no request streamed two or more chunks",
        method=LATENCY_METHOD,
    )


def serving_figures(stage: StageRun, e: Energy, server: Server) -> ServingFigures:
    serving = stage.serving
    records, window, share, good = stage.records, stage.window, stage.share, stage.good
    assert window is not None and share is not None and good is not None  # a measured stage
    measured = [r for r in records if not r.warmup]
    sent = [r for r in measured if r.sent_s is not None]
    lags = [r.send_lag_s * 1000 for r in sent if r.send_lag_s is not None]
    tpots = [r.tpot_s * 1000 for r in measured if r.ok and r.tpot_s is not None]
    gpu_j = e.gpu_j
    adjusted = e.gpu_adjusted_j
    why = e.gpu_j_reason or "GPU energy was not measured"
    per_token, _ = figures.per(gpu_j, share.tokens, why)
    per_slo_token, per_slo_token_why = figures.per(gpu_j, share.slo_tokens, why)
    j_req = j_req_why = j_slo = j_slo_why = adj_req = adj_req_why = None
    if per_token is None:
        j_req_why = j_slo_why = adj_req_why = why
    else:
        j_req = per_token * (share.mean_tokens or 0.0)
        if per_slo_token is not None and share.mean_slo_tokens:
            j_slo = per_slo_token * share.mean_slo_tokens
        else:
            j_slo_why = per_slo_token_why or "no request met every SLO"
        adj_token, adj_token_why = figures.per(
            adjusted, share.tokens, e.gpu_adjusted_j_reason or why
        )
        if adj_token is not None:
            adj_req = adj_token * (share.mean_tokens or 0.0)
        else:
            adj_req_why = adj_token_why
    no_slo = "no SLO was given: every completed request counts" if not serving.slo.given else None
    return ServingFigures(
        target_request_rate=None if serving.request_rate == "inf" else serving.rate,
        target_request_rate_reason="request_rate 'inf': every request sent at once"
        if serving.request_rate == "inf"
        else None,
        achieved_request_rate=figures.achieved_rate(records),
        send_lag_ms=summarise(lags) if lags else None,
        send_lag_ms_reason=None if lags else "no request was sent",
        requests_sent=len(sent),
        requests_completed=sum(1 for r in measured if r.ok),
        requests_failed=sum(1 for r in measured if not r.ok),
        warmup_requests=len(records) - len(measured),
        steady_start_s=window.start_s,
        steady_end_s=window.end_s,
        steady_rule=STEADY_RULE.format(fraction=serving.steady_fraction, smooth=serving.slice_s),
        peak_in_flight=window.peak_in_flight,
        steady_level_in_flight=window.level,
        load_duration_s=max((r.end_s or 0.0) for r in records),
        tpot_ms=summarise(tpots) if tpots else None,
        tpot_ms_reason=None if tpots else "no completed request had two or more tokens",
        slo=serving.slo.given,
        goodput_requests_per_s=good.requests_per_s,
        goodput_requests_per_s_reason=None,
        goodput_fraction=good.fraction,
        goodput_fraction_reason=None if good.fraction is not None else "no request completed",
        j_per_request=j_req,
        j_per_request_reason=j_req_why,
        j_per_slo_request=j_slo,
        j_per_slo_request_reason=j_slo_why,
        j_per_slo_output_token=per_slo_token,
        j_per_slo_output_token_reason=per_slo_token_why if per_slo_token is None else None,
        adjusted_j_per_request=adj_req,
        adjusted_j_per_request_reason=adj_req_why,
        attribution=figures.ATTRIBUTION + (f"; {no_slo}" if no_slo else ""),
        server=server.description,
        server_ready_s=server.ready_s,
        slices_file=WorkPaths.SLICES,
        requests_file=WorkPaths.REQUESTS,
        server_metrics_file=server.metrics_file,
        server_metrics_file_reason=None
        if server.metrics_file
        else "the server exposed none of its queue or KV-cache gauges at /metrics",
        figure_windows=SERVING_WINDOWS,
    )


def stage_warnings(stage: StageRun) -> list[QualityWarning]:
    serving, records, window = stage.serving, stage.records, stage.window
    assert window is not None  # a measured stage
    kept: list[QualityWarning] = []
    if not window.reached:
        kept.append(
            QualityWarning(
                code="steady_state_not_reached",
                message="requests in flight kept rising until the last send: the server "
                "fell behind the arrivals (overload), so there is no steady state; the "
                "figures cover the whole sending period after the warm-up",
            )
        )
    elif window.duration_s < serving.min_steady_s:
        rate = figures.achieved_rate(records)
        more = requests_for_more_steady_s(serving.min_steady_s - window.duration_s, rate)
        kept.append(
            QualityWarning(
                code="steady_state_short",
                message=f"steady state {window.duration_s:.1f} s < min_steady_s "
                f"{serving.min_steady_s:g} s: about {more} more requests at the achieved "
                f"{rate:.2f} req/s would fix it",
            )
        )
    lags = sorted(r.send_lag_s for r in records if r.send_lag_s is not None)
    if lags and lags[int(0.99 * (len(lags) - 1))] > serving.max_send_lag_s:
        p99 = lags[int(0.99 * (len(lags) - 1))]
        kept.append(
            QualityWarning(
                code="send_lag",
                message=f"the generator sent late (p99 lag {p99 * 1000:.1f} ms > "
                f"{serving.max_send_lag_s * 1000:g} ms): the host could not generate the "
                "target rate; the achieved rate is the one to read",
            )
        )
    if stage.failed_requests:
        kept.append(
            QualityWarning(
                code="requests_failed",
                message=f"{stage.failed_requests} measured request(s) failed; see "
                f"{WorkPaths.REQUESTS}",
            )
        )
    return kept
