"""One request as the load generator saw it (client timestamps, s since its stage's sending
began)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


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
