"""Per-request records: send lag."""

from __future__ import annotations

import pytest

from llenergymeasure.experiment.serving.records import RequestRecord


def test_send_lag_is_the_generators_own_delay_not_the_caps_wait():
    late = RequestRecord(index=0, scheduled_s=1.0, warmup=False, input_tokens=8, sent_s=1.2)
    assert late.send_lag_s == pytest.approx(0.2)  # no cap: sent after its arrival time
    capped = RequestRecord(
        index=1, scheduled_s=1.0, warmup=False, input_tokens=8, released_s=3.0, sent_s=3.001
    )
    assert capped.send_lag_s == pytest.approx(0.001)  # the wait for a free place is not lag
