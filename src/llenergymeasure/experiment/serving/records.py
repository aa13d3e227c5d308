"""One request as the load generator saw it (client timestamps, s since sending began), and
the per-request Parquet file of the work folder."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RequestRecord:
    index: int
    scheduled_s: float  # its arrival time from the arrival process
    warmup: bool
    input_tokens: int  # what the run planned; the server's own count once it answered
    prompt: int = 0  # the prompt set's index
    max_tokens: int = 0  # the output length asked for
    session: int | None = None  # multi-turn: its session and turn
    turn: int = 0
    sent_s: float | None = None  # when the HTTP request went out
    released_s: float | None = None  # when the concurrency cap let it go (None: no cap)
    token_times_s: list[float] = field(default_factory=list)  # each streamed token's arrival
    end_s: float | None = None
    output_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.end_s is not None and self.output_tokens > 0

    @property
    def ttft_s(self) -> float | None:
        if self.sent_s is None or not self.token_times_s:
            return None
        return self.token_times_s[0] - self.sent_s

    @property
    def e2e_s(self) -> float | None:
        return None if self.sent_s is None or self.end_s is None else self.end_s - self.sent_s

    @property
    def tpot_s(self) -> float | None:
        """(E2E - TTFT) / (n - 1): the mean time per output token after the first."""
        ttft, e2e = self.ttft_s, self.e2e_s
        if ttft is None or e2e is None or self.output_tokens < 2:
            return None
        return (e2e - ttft) / (self.output_tokens - 1)

    @property
    def itls_s(self) -> list[float]:
        times = self.token_times_s
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def send_lag_s(self) -> float | None:
        """The generator's own delay: sent after its arrival time (or its release by the cap)."""
        if self.sent_s is None:
            return None
        return self.sent_s - max(self.scheduled_s, self.released_s or self.scheduled_s)


def write_requests(records: list[RequestRecord], path: Path, slo_met: list[bool | None]) -> None:
    """One row per request; times in s since sending began; units in the column names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "index": pa.array([r.index for r in records], pa.int32()),
            "warmup": pa.array([r.warmup for r in records], pa.bool_()),
            "scheduled_s": pa.array([r.scheduled_s for r in records], pa.float64()),
            "sent_s": pa.array([r.sent_s for r in records], pa.float64()),
            "send_lag_s": pa.array([r.send_lag_s for r in records], pa.float64()),
            "first_token_s": pa.array(
                [r.token_times_s[0] if r.token_times_s else None for r in records], pa.float64()
            ),
            "end_s": pa.array([r.end_s for r in records], pa.float64()),
            "prompt_index": pa.array([r.prompt for r in records], pa.int32()),
            "session": pa.array([r.session for r in records], pa.int32()),
            "turn": pa.array([r.turn for r in records], pa.int32()),
            "input_tokens": pa.array([r.input_tokens for r in records], pa.int32()),
            "requested_output_tokens": pa.array([r.max_tokens for r in records], pa.int32()),
            "output_tokens": pa.array([r.output_tokens for r in records], pa.int32()),
            "ttft_ms": pa.array([_ms(r.ttft_s) for r in records], pa.float64()),
            "tpot_ms": pa.array([_ms(r.tpot_s) for r in records], pa.float64()),
            "e2e_ms": pa.array([_ms(r.e2e_s) for r in records], pa.float64()),
            "token_times_s": pa.array([r.token_times_s for r in records], pa.list_(pa.float64())),
            "slo_met": pa.array(slo_met, pa.bool_()),
            "error": pa.array([r.error for r in records], pa.string()),
        }
    )
    pq.write_table(table, path)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
