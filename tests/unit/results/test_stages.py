"""A staged serving run in the tables: one row per stage with the stage's own figures; a stage
list summarised per stage over cycles, a find_max_rate run by the rate it found."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers.results import Figures, pytorch_config, write_study
from llenergymeasure.contract.result import ExperimentResult, MaxRateFinding, StageResult
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.tables import runs_frame, summary_frame

SECTIONS = ("timings", "tokens", "throughput", "latency", "energy", "memory", "telemetry", "flops")


def _stage(result: ExperimentResult, index: int, rate: float, tokens_per_s: float) -> StageResult:
    sections = {name: getattr(result, name) for name in SECTIONS}
    sections["throughput"] = result.throughput.model_copy(
        update={"output_tokens_per_s": tokens_per_s}
    )
    return StageResult(
        index=index,
        request_rate=rate,
        max_concurrency=None,
        n_requests=None,
        duration_s=60.0,
        outcome="completed",
        detail=None,
        met_slo=None,
        began_s=70.0 * index,
        **sections,
    )


def _staged_study(tmp_path: Path, rates_by_cycle: list[list[float]], search: bool) -> Path:
    study = write_study(
        tmp_path, [({}, pytorch_config(1))], len(rates_by_cycle), lambda c, k: Figures(100.0)
    )
    for path in sorted((study / "experiments").glob("*/result.json")):
        result = ExperimentResult.model_validate_json(path.read_text())
        rates = rates_by_cycle[result.context.cycle]
        stages = [_stage(result, k, rate, 10.0 * rate) for k, rate in enumerate(rates)]
        update: dict = {"stages": stages, "headline_stage": len(stages) - 1}
        if search:
            best = len(stages) - 2
            update["headline_stage"] = best
            update["max_rate"] = MaxRateFinding(
                max_rate=rates[best],
                max_rate_reason=None,
                stage=best,
                first_failed_rate=rates[-1],
                goodput_bound=0.99,
                tolerance=0.1,
                probes=len(stages),
                method="test",
            )
        path.write_text(json.dumps(result.model_copy(update=update).model_dump(mode="json")))
    return study


def test_a_stage_list_gives_a_row_per_stage_and_a_summary_per_stage(tmp_path):
    study = load_study_results(_staged_study(tmp_path, [[1, 4, 8]] * 3, search=False))
    runs = runs_frame(study)
    assert len(runs) == 9 and runs.groupby("run_id").size().tolist() == [3, 3, 3]
    assert runs["stage"].tolist()[:3] == [0, 1, 2]
    assert runs["throughput.output_tokens_per_s"].tolist()[:3] == [10, 40, 80]
    assert runs["stage.headline"].tolist()[:3] == [False, False, True]
    summary = summary_frame(study, runs)
    assert summary["stage"].tolist() == [0, 1, 2]
    assert summary["stage.request_rate"].tolist() == [1, 4, 8]
    assert summary["throughput.output_tokens_per_s.mean"].tolist() == pytest.approx([10, 40, 80])
    assert summary["runs_completed"].tolist() == [3, 3, 3]


def test_a_rate_search_is_summarised_at_the_rate_it_found(tmp_path):
    # probes differ from cycle to cycle; each found the rate before its last probe
    cycles = [[1, 2, 4, 3], [1, 2, 4, 2.8], [1, 2, 4, 3.2, 3.6]]
    study = load_study_results(_staged_study(tmp_path, cycles, search=True))
    runs = runs_frame(study)
    assert len(runs) == 13 and runs["max_rate.max_rate"].notna().all()
    summary = summary_frame(study, runs)
    assert len(summary) == 1 and pd.isna(summary.loc[0, "stage"])
    assert summary.loc[0, "max_rate.max_rate.mean"] == pytest.approx((4 + 4 + 3.2) / 3)
    found_tps = [40, 40, 32]
    assert summary.loc[0, "throughput.output_tokens_per_s.mean"] == pytest.approx(
        sum(found_tps) / 3
    )
