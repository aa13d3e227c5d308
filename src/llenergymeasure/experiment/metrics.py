"""Pure figures from what the window recorded: percentiles, latency, FLOPs, warmup CV."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence

from llenergymeasure.backends.base import BatchOutput, ModelShape
from llenergymeasure.contract.result import Flops, Latency, Percentiles

LATENCY_METHOD = (
    "host perf_counter at each decoding step (transformers streamer; the step's tokens are "
    "copied to the host, which synchronises the device); TTFT = first token since the batch's "
    "generate call, ITL = gaps between a request's consecutive tokens, request = batch wall time"
)
FLOPS_METHOD = (
    "2 x matmul parameters x tokens processed (prefill + decode, padding excluded; input "
    "embedding excluded as a lookup) + 4 x layers x attention width x attended context per "
    "token (QK^T and AV with a KV cache)"
)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not sorted_values:
        raise ValueError("no samples")
    rank = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)


def summarise(values: Sequence[float]) -> Percentiles:
    ordered = sorted(values)
    return Percentiles(
        n=len(ordered),
        mean=statistics.fmean(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        min=ordered[0],
        max=ordered[-1],
    )


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Population standard deviation over mean of the given latencies."""
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean > 0 else math.inf


def latency(outputs: Sequence[BatchOutput], method: str | None = None) -> Latency:
    request_ms = [s * 1000 for out in outputs for s in out.request_latency_s]
    ttft_ms: list[float] = []
    itl_ms: list[float] = []
    reasons = {out.token_times_reason for out in outputs if out.token_times_reason}
    for out in outputs:
        for times in out.token_times_s:
            if times:
                ttft_ms.append(times[0] * 1000)
            itl_ms.extend((b - a) * 1000 for a, b in itertools.pairwise(times))
    ttft_reason = itl_reason = None
    if not ttft_ms:
        ttft_reason = "; ".join(sorted(reasons)) or "no request generated a token"
    if not itl_ms:
        itl_reason = "; ".join(sorted(reasons)) or "no request generated two or more tokens"
    return Latency(
        request_ms=summarise(request_ms),
        ttft_ms=summarise(ttft_ms) if ttft_ms else None,
        ttft_ms_reason=ttft_reason,
        itl_ms=summarise(itl_ms) if itl_ms else None,
        itl_ms_reason=itl_reason,
        method=method or LATENCY_METHOD,
    )


def request_flops(shape: ModelShape, input_tokens: int, output_tokens: int) -> float:
    """Forward FLOPs of one request: a prefill over the prompt, then one step per further token.

    The last generated token is never fed back, so output_tokens - 1 decode steps run.
    """
    decode_steps = max(output_tokens - 1, 0)
    processed = input_tokens + decode_steps if output_tokens else 0
    # Context attended: 1..L during prefill, then L+1..L+decode_steps.
    context = 0
    if output_tokens:
        context = input_tokens * (input_tokens + 1) // 2
        context += decode_steps * input_tokens + decode_steps * (decode_steps + 1) // 2
    linear = 2.0 * shape.matmul_parameters * processed
    attention = 4.0 * shape.layers * shape.attention_dim * context
    return linear + attention


def flops(shape: ModelShape, requests: Sequence[tuple[int, int]]) -> Flops:
    """`requests`: (input tokens, output tokens) of every request in the window."""
    total = sum(request_flops(shape, i, o) for i, o in requests)
    output = sum(o for _, o in requests)
    return Flops(
        parameters=shape.parameters,
        total=total,
        per_output_token=total / output if output else None,
        per_output_token_reason=None if output else "no output tokens were generated",
        method=FLOPS_METHOD,
    )
