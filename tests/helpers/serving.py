"""Serving records of known shape: a request sent at `sent`, its tokens evenly until `end`."""

from __future__ import annotations

from llenergymeasure.experiment.serving.records import RequestRecord


def request_record(
    k: int,
    sent: float,
    end: float,
    tokens: int = 4,
    warmup: bool = False,
    error: str | None = None,
) -> RequestRecord:
    step = (end - sent) / tokens
    return RequestRecord(
        index=k,
        scheduled_s=sent,
        warmup=warmup,
        input_tokens=8,
        sent_s=sent,
        released_s=sent,
        token_times_s=[sent + step * (i + 1) for i in range(tokens)],
        end_s=end,
        output_tokens=tokens,
        error=error,
    )
