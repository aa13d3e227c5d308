"""A search trial's load stopped once a latency constraint is settled against it
(`contract.pruning`): called with the time since sending began, like `Overload`.

Every measured request sent so far is judged: one answered (or, for TTFT, with its first
token) by its value; one still waiting longer than the bound as past it (its value can only
be larger); one still waiting within the bound as within it, and a TPOT not yet known as
within it, the most favourable reading, so that the test errs towards running on. Failed
requests give no latency and are left out, as in the run's figures.
"""

from __future__ import annotations

from collections.abc import Sequence

from llenergymeasure.contract.pruning import LatencyBound
from llenergymeasure.experiment.serving.records import RequestRecord


class ConstraintPrune:
    def __init__(self, records: Sequence[RequestRecord], bounds: Sequence[LatencyBound]) -> None:
        self.records, self.bounds = records, bounds

    def __call__(self, now_s: float) -> str | None:
        for bound in self.bounds:
            within, judged = self.count(bound, now_s)
            reason = bound.settled(within, judged)
            if reason is not None:
                return reason
        return None

    def count(self, bound: LatencyBound, now_s: float) -> tuple[int, int]:
        """(requests within the bound or still able to be, requests judged)."""
        within = judged = 0
        limit_s = bound.bound / 1000
        for record in self.records:
            if record.warmup or record.sent_s is None or record.error is not None:
                continue
            value = _value_s(record, bound.kind)
            if value is None:
                waited = now_s - record.sent_s
                judged += 1
                within += bound.kind == "tpot" or waited <= limit_s
                continue
            judged += 1
            within += value <= limit_s if bound.op == "<=" else value < limit_s
        return within, judged


def _value_s(record: RequestRecord, kind: str) -> float | None:
    if kind == "ttft":
        return record.ttft_s
    if kind == "e2e":
        return record.e2e_s
    return record.tpot_s if record.end_s is not None else None
