"""Early termination of a search trial, both ways it is decided.

A serving trial's latency constraint, as its container may settle it while the load runs: a
per-request latency quantile that cannot meet its bound whatever the requests still to come.
Only upper bounds on per-request latencies are settled this way, and only a one-stage serving
run's (a staged run's verdict is over its stages).

An offline trial's window in slices: its container reports the window so far each time a tenth
of `min_window_s` has passed (`slice_figures`), and the host's pruner (Optuna's, by the
search's objective) stops a trial whose figures trail the others' at the same slice."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from llenergymeasure.contract.config import Strict

# metric -> what a request's record gives (RequestRecord): its TTFT, its end-to-end latency
PER_REQUEST = {"latency.ttft_ms": "ttft", "latency.request_ms": "e2e", "serving.tpot_ms": "tpot"}
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
MIN_REQUESTS = 10  # measured requests judged before any verdict
# The chance of pruning a trial that meets its bound, per look; the container looks once per
# slice, so a run of a few hundred looks is wrongly pruned well under 5 % of the time.
ALPHA_PER_LOOK = 1e-4


# An offline window's slices: the figures are reported as each tenth of min_window_s passes.
SLICES = 10
# The metrics a slice reports (the window so far, by the result's own definitions): the
# objectives an Optuna pruner can follow.
SLICE_METRICS = (
    "throughput.output_tokens_per_s",
    "energy.j_per_output_token",
    "energy.output_tokens_per_j",
)


def slices_passed(elapsed_s: float, window_s: float) -> int:
    """The slices of a `window_s` window that `elapsed_s` has passed (at most SLICES)."""
    if window_s <= 0:
        return SLICES
    return min(SLICES, int(elapsed_s * SLICES / window_s))


def slice_figures(output_tokens: int, elapsed_s: float, gpu_j: float | None) -> dict[str, float]:
    """The window so far: its output throughput and, where the GPUs' energy was read, its
    energy per output token both ways; a figure that cannot be formed is left out."""
    figures: dict[str, float] = {}
    if elapsed_s > 0:
        figures["throughput.output_tokens_per_s"] = output_tokens / elapsed_s
    if gpu_j is not None and gpu_j > 0 and output_tokens > 0:
        figures["energy.j_per_output_token"] = gpu_j / output_tokens
        figures["energy.output_tokens_per_j"] = output_tokens / gpu_j
    return figures


class TrialPruned(Exception):
    """A trial's load stopped by its settled constraint: error.json's type, the host's
    `error_type`, and a view's `pruned` state."""


def is_pruned(error_type: str | None) -> bool:
    """Whether a run that failed with `error_type` was a pruned trial (its container's
    constraint check, or the host's pruner): never a measurement."""
    return error_type == TrialPruned.__name__


class LatencyBound(Strict):
    """`METRIC.pXX <= BOUND` (or <) on a per-request latency, in ms."""

    metric: str = Field(description="e.g. latency.ttft_ms.p99")
    op: Literal["<=", "<"]
    bound: float = Field(description="The bound, in the metric's unit (ms).")

    @property
    def kind(self) -> str:
        return PER_REQUEST[self.metric.rsplit(".", 1)[0]]

    @property
    def quantile(self) -> float:
        return QUANTILES[self.metric.rsplit(".", 1)[1]]

    @classmethod
    def of(cls, metric: str, op: str, bound: float) -> LatencyBound | None:
        """The bound, where the constraint is one a load can settle early; else None."""
        family, _, stat = metric.rpartition(".")
        if family not in PER_REQUEST or stat not in QUANTILES or op not in ("<=", "<"):
            return None
        return cls(metric=metric, op=op, bound=bound)  # type: ignore[arg-type]

    def settled(self, within: int, judged: int) -> str | None:
        """Why the quantile cannot meet the bound, with `within` of `judged` requests known or
        still able to be within it; None while it may. Under the bound's hypothesis (the
        quantile within it) at least that share of requests is within it, so `within` is at
        least Binomial(judged, quantile): a count that small has a chance below
        ALPHA_PER_LOOK."""
        if judged < MIN_REQUESTS:
            return None
        p = binomial_cdf(within, judged, self.quantile)
        if p >= ALPHA_PER_LOOK:
            return None
        return (
            f"pruned: {self.metric} {self.op} {self.bound:g} cannot be met: {within} of "
            f"{judged} measured requests within it (P = {p:.1e} were it met)"
        )


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), summed in logs (n up to the tens of thousands)."""
    if k >= n:
        return 1.0
    if k < 0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))
