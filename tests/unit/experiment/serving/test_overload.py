"""The early stop of an overloaded find_max_rate stage, on records of known shape."""

from __future__ import annotations

from helpers.serving import request_record
from llenergymeasure.contract.serving import ServingSLO
from llenergymeasure.experiment.serving.overload import Overload, already_missed, backlog
from llenergymeasure.experiment.serving.records import RequestRecord

SLO = ServingSLO(ttft_ms=100, e2e_ms=1000)


def _waiting(k: int, sent: float | None, scheduled: float = 0.0) -> RequestRecord:
    return RequestRecord(index=k, scheduled_s=scheduled, warmup=False, input_tokens=8, sent_s=sent)


def test_a_miss_is_certain_from_a_known_latency_or_a_wait_past_the_bound():
    fast = request_record(0, sent=0.0, end=0.5)  # first token at 0.125 s: TTFT 125 ms > 100
    assert already_missed(fast, SLO, now_s=1.0)
    quick = request_record(1, sent=0.0, end=0.2, tokens=8)  # TTFT 25 ms, E2E 200 ms
    assert not already_missed(quick, SLO, now_s=5.0)
    pending = _waiting(2, sent=0.0)
    assert not already_missed(pending, SLO, now_s=0.05)  # 50 ms without a token: not yet
    assert already_missed(pending, SLO, now_s=0.2)
    warmup = request_record(3, sent=0.0, end=5.0, warmup=True)
    assert not already_missed(warmup, SLO, now_s=9.0)


def test_it_stops_once_misses_exceed_what_the_bound_allows():
    records = [request_record(k, sent=k * 0.1, end=k * 0.1 + 0.1, tokens=8) for k in range(100)]
    check = Overload(records, SLO, goodput_bound=0.98)  # 2 misses allowed in 100
    assert check(20.0) is None
    for k in (10, 20, 30):
        records[k] = request_record(k, sent=k * 0.1, end=k * 0.1 + 2.0)  # E2E 2 s > 1 s
    reason = check(20.0)
    assert reason is not None and "3 measured request(s) already missed an SLO" in reason


def test_it_stops_when_requests_due_keep_piling_up():
    records: list[RequestRecord] = []
    check = Overload(records, ServingSLO(e2e_ms=60_000), goodput_bound=0.5)
    for second in range(1, 7):
        # ten more due each second, none answered
        records.extend(
            _waiting(len(records) + i, sent=None, scheduled=second - 1) for i in range(10)
        )
        reason = check(float(second))
    assert reason is not None and "rose at each of the last 4 checks" in reason
    assert backlog(records, 6.0) == 60


def test_a_steady_backlog_never_stops_it():
    records = [_waiting(k, sent=float(k)) for k in range(8)]
    check = Overload(records, ServingSLO(e2e_ms=60_000), goodput_bound=0.5)
    assert all(check(float(t)) is None for t in range(8, 20))
