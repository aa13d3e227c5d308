"""Pure figures of a serving run from its request records, steady state and energy series:
goodput, energy attribution, time slices. Unit-tested on known inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llenergymeasure.contract.serving import ServingSLO
from llenergymeasure.experiment.serving.records import RequestRecord
from llenergymeasure.experiment.serving.window import SteadyState

ATTRIBUTION = (
    "the steady-state window's GPU energy shared by the output tokens generated inside it "
    "(client timestamps; a request's tokens outside the window carry none of it): J per token "
    "= window energy / those tokens; J per request = J per token x the mean output tokens of a "
    "completed request; the SLO-meeting figures share the same energy among the tokens of "
    "SLO-meeting requests only"
)


def meets_slo(record: RequestRecord, slo: ServingSLO) -> bool | None:
    """Whether a completed request met every SLO given; None for a request that failed."""
    if not record.ok:
        return None
    checks = {"ttft_ms": record.ttft_s, "tpot_ms": record.tpot_s, "e2e_ms": record.e2e_s}
    for key, bound in slo.given.items():
        value = checks[key]
        if key == "tpot_ms" and value is None:  # one output token: no time per further token
            continue
        if value is None or value * 1000.0 > bound:
            return False
    return True


def tokens_in(record: RequestRecord, start_s: float, end_s: float) -> float:
    """Output tokens of `record` that arrived in [start_s, end_s] (a streamed chunk carrying
    several tokens counts for its share)."""
    times = record.token_times_s
    if not times or not record.ok:
        return 0.0
    per_chunk = record.output_tokens / len(times)
    return per_chunk * sum(1 for t in times if start_s <= t <= end_s)


def measured_in(
    records: Sequence[RequestRecord], window: SteadyState, moment: str
) -> list[RequestRecord]:
    """Completed measured requests whose `moment` ("sent_s" or "end_s") lies in the window."""
    out = []
    for r in records:
        t = getattr(r, moment)
        if not r.warmup and r.ok and t is not None and window.start_s <= t <= window.end_s:
            out.append(r)
    return out


@dataclass(frozen=True)
class Goodput:
    completed_in_window: int
    good_in_window: int
    requests_per_s: float
    fraction: float | None


def goodput(records: Sequence[RequestRecord], window: SteadyState, slo: ServingSLO) -> Goodput:
    """Measured requests that completed inside the window, and those meeting every SLO, per
    second of window. Without SLOs every completed request counts."""
    done = measured_in(records, window, "end_s")
    good = [r for r in done if meets_slo(r, slo)]
    return Goodput(
        completed_in_window=len(done),
        good_in_window=len(good),
        requests_per_s=len(good) / window.duration_s,
        fraction=len(good) / len(done) if done else None,
    )


@dataclass(frozen=True)
class Attribution:
    tokens: float  # every request's output tokens inside the window
    slo_tokens: float  # those of SLO-meeting requests
    mean_tokens: float | None  # mean output tokens of a completed measured request
    mean_slo_tokens: float | None


def attribution(
    records: Sequence[RequestRecord], window: SteadyState, slo: ServingSLO
) -> Attribution:
    completed = [r for r in records if not r.warmup and r.ok]
    good = [r for r in completed if meets_slo(r, slo)]
    return Attribution(
        tokens=sum(tokens_in(r, window.start_s, window.end_s) for r in records),
        slo_tokens=sum(tokens_in(r, window.start_s, window.end_s) for r in good),
        mean_tokens=_mean([r.output_tokens for r in completed]),
        mean_slo_tokens=_mean([r.output_tokens for r in good]),
    )


def per(energy_j: float | None, count: float | None, why: str) -> tuple[float | None, str | None]:
    """energy / count, or None with the reason."""
    if energy_j is None:
        return None, why
    if not count:
        return None, "nothing to share it among"
    return energy_j / count, None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def achieved_rate(records: Sequence[RequestRecord]) -> float:
    """Measured requests sent per second, first send to last (0 with one request)."""
    sent = sorted(r.sent_s for r in records if not r.warmup and r.sent_s is not None)
    if len(sent) < 2 or sent[-1] <= sent[0]:
        return 0.0
    return (len(sent) - 1) / (sent[-1] - sent[0])


def slices(end_s: float, slice_s: float) -> list[tuple[float, float]]:
    """[0, end_s) cut into slices of slice_s (the last one shorter)."""
    count = max(1, math.ceil(end_s / slice_s))
    return [(k * slice_s, min((k + 1) * slice_s, end_s)) for k in range(count)]
