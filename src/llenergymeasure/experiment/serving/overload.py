"""When a find_max_rate stage clearly cannot meet the SLOs, so it is stopped early: checked
every `check_every_s` while the load is sent, from the records alone.

Two rules, either one stops the stage:
- misses: measured requests already past an SLO (a known TTFT, TPOT or E2E above it, or a
  request still waiting for its first or last token longer than the TTFT or E2E bound) number
  more than (1 - goodput_bound) x the stage's measured requests: the bound cannot be met unless
  those misses all fall outside the steady state;
- backlog: requests due and not yet answered (in flight, or held by the concurrency cap) rose at
  each of the last `RISING_CHECKS` checks, to at least `RISE_FACTOR` x and `MIN_BACKLOG` more
  than where they started: arrivals outpace the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from llenergymeasure.contract.serving import ServingSLO
from llenergymeasure.experiment.serving.records import RequestRecord

RISING_CHECKS = 4
RISE_FACTOR = 2.0
MIN_BACKLOG = 8


def already_missed(record: RequestRecord, slo: ServingSLO, now_s: float) -> bool:
    """Whether `record` has missed an SLO for certain by `now_s` (s since sending began)."""
    if record.sent_s is None or record.warmup:
        return False
    waited_ms = (now_s - record.sent_s) * 1000.0
    ttft, e2e, tpot = slo.ttft_ms, slo.e2e_ms, slo.tpot_ms
    first = record.ttft_s
    if ttft is not None and (first * 1000 > ttft if first is not None else waited_ms > ttft):
        return True
    if record.end_s is None:
        return e2e is not None and waited_ms > e2e
    if not record.ok:
        return False  # a failure is counted apart
    if e2e is not None and (record.e2e_s or 0.0) * 1000 > e2e:
        return True
    return tpot is not None and record.tpot_s is not None and record.tpot_s * 1000 > tpot


def backlog(records: Sequence[RequestRecord], now_s: float) -> int:
    """Requests due by `now_s` and not yet ended: sent, or held by the concurrency cap (a
    session's later turn is due only once sent)."""
    return sum(
        1
        for r in records
        if r.end_s is None
        and r.error is None
        and (r.sent_s is not None or (r.turn == 0 and r.scheduled_s <= now_s))
    )


class Overload:
    """Called with the time since sending began; returns why the stage should stop, or None."""

    def __init__(
        self, records: Sequence[RequestRecord], slo: ServingSLO, goodput_bound: float
    ) -> None:
        self.records, self.slo = records, slo
        measured = sum(1 for r in records if not r.warmup)
        self.allowed_misses = (1.0 - goodput_bound) * measured
        self.backlogs: list[int] = []

    def __call__(self, now_s: float) -> str | None:
        missed = sum(1 for r in self.records if already_missed(r, self.slo, now_s))
        if missed > self.allowed_misses:
            return (
                f"{missed} measured request(s) already missed an SLO by {now_s:.1f} s, more than "
                f"the {self.allowed_misses:.1f} the goodput bound allows in this stage"
            )
        self.backlogs.append(backlog(self.records, now_s))
        last = self.backlogs[-(RISING_CHECKS + 1) :]
        rising = len(last) == RISING_CHECKS + 1 and all(b > a for a, b in itertools.pairwise(last))
        if (
            rising
            and last[-1] >= RISE_FACTOR * max(last[0], 1)
            and last[-1] - last[0] >= MIN_BACKLOG
        ):
            return (
                f"requests due and unanswered rose at each of the last {RISING_CHECKS} "
                f"checks, from {last[0]} to {last[-1]}: arrivals outpace the server"
            )
        return None
