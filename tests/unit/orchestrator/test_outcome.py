"""How a run's end is classified: a crash at the process limit."""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.orchestrator.outcome import classify
from llenergymeasure.orchestrator.pids import limit_reason


def test_a_crash_at_the_process_limit_is_classified_as_such(tmp_path: Path) -> None:
    reason = limit_reason(64, 3, "")
    verdict = classify(tmp_path, 4, False, None, process_limit=reason)
    assert (verdict.status, verdict.outcome, verdict.error_type) == (
        "failed",
        "crashed",
        "ProcessLimit",
    )
    assert verdict.error == f"exited with code 4: {reason}"
    plain = classify(tmp_path, 4, False, None)
    assert (plain.error_type, plain.error) == ("Crash", "exited with code 4")
