"""Process limits: the reasons a run met one, and a container without a cgroup."""

from __future__ import annotations

from llenergymeasure.orchestrator.machine.pids import PidsWatch, limit_reason


def test_process_limit_reasons() -> None:
    assert limit_reason(None, 5, "") is None  # no limit set: nothing to blame
    counted = limit_reason(64, 12, "")
    assert counted is not None and "refused it 12 new processes" in counted
    assert "execution.pids_limit = 64" in counted
    assert limit_reason(64, 0, "Resource temporarily unavailable") is None  # the cgroup says no
    inferred = limit_reason(64, None, "OSError: [Errno 11] Resource temporarily unavailable")
    assert inferred is not None and inferred.startswith("its log shows") and "likely" in inferred
    assert limit_reason(64, None, "RuntimeError: can't start new thread") is not None
    assert limit_reason(64, None, "Segmentation fault") is None


def test_an_unknown_container_has_no_readable_cgroup() -> None:
    watch = PidsWatch("0" * 64)
    watch.poll()
    assert watch.refused is None and watch.tasks() is None
