"""How a run's end is classified: a crash at the process limit."""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.orchestrator.executors.outcome import classify
from llenergymeasure.orchestrator.machine.pids import limit_reason


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


def test_a_server_that_died_in_a_later_stage_fails_the_run_and_keeps_its_result(
    tmp_path: Path,
) -> None:
    from helpers.factories import run_context
    from helpers.results import Figures, make_result, pytorch_config
    from llenergymeasure.contract.result import StageResult
    from llenergymeasure.contract.workdir import WorkPaths, atomic_write_json

    result = make_result(run_context(), pytorch_config(1), Figures(100.0))
    common = {"max_concurrency": None, "n_requests": 10, "duration_s": None, "met_slo": None}
    died = "the vllm server died during the load in stage 1 (5 req/s) (exit code -9)"
    stages = [
        StageResult(
            index=0,
            request_rate=1.0,
            outcome="completed",
            detail=None,
            began_s=0,
            throughput=result.throughput,
            **common,
        ),
        StageResult(
            index=1, request_rate=5.0, outcome="server_died", detail=died, began_s=20, **common
        ),
    ]
    staged = result.model_copy(update={"stages": stages, "headline_stage": 0})
    atomic_write_json(tmp_path / WorkPaths.RESULT, staged)
    verdict = classify(tmp_path, 0, False, None)
    assert (verdict.status, verdict.outcome, verdict.error_type) == (
        "failed",
        "failed",
        "ServerFailed",
    )
    assert verdict.error == died and verdict.result is not None
    assert verdict.result.stages[0].outcome == "completed"
