"""Serving workloads end to end on the vllm-cpu image: a ShareGPT-format file sent as chat
sessions (the server applies the tiny model's chat template; each later turn carries the
conversation), a trace replayed at a scaled time, and shared-prefix groups; and a malformed
dataset refused at plan time with its file and record."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.integration import llem, study_dirs, vllm_cpu_serving_study, write_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

SHAREGPT = [
    {
        "conversations": [
            {"from": "human", "value": f"how many joules does question {k} take"},
            {"from": "gpt", "value": " ".join(["watts"] * (2 + k % 5))},
        ]
    }
    for k in range(8)
]
TRACE_ROWS = 12


def _files(tmp_path) -> None:
    (tmp_path / "sharegpt.json").write_text(json.dumps(SHAREGPT))
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"{k * 0.5:.2f},{8 + k},{1 + k % 4}" for k in range(TRACE_ROWS)]
    (tmp_path / "trace.csv").write_text("\n".join(rows) + "\n")


def _study(tmp_path, experiments: list[dict]) -> object:
    _files(tmp_path)
    return vllm_cpu_serving_study(tmp_path, experiments=experiments)


SESSIONS = {
    "prompts": {"source": "sharegpt", "path": "sharegpt.json"},
    "n_prompts": 8,
    "serving": {
        "endpoint": "chat",
        "request_rate": 2,
        "n_requests": 16,
        "sessions": {"turns": 2, "think_time_s": 0.2},
        "min_steady_s": 1,
    },
}
TRACE = {
    "prompts": {"source": "trace", "path": "trace.csv", "time_scale": 0.5},
    "n_prompts": TRACE_ROWS,
    "serving": {"min_steady_s": 1},
}
SHARED = {
    "prompts": {
        "source": "shared_prefix",
        "prefix_tokens": 32,
        "groups": 2,
        "input_length": {"distribution": "fixed", "tokens": 8},
    },
    "n_prompts": 8,
    "serving": {"request_rate": 4, "n_requests": 16, "min_steady_s": 1},
}


@pytest.mark.docker
@pytest.mark.slow
def test_sharegpt_chat_sessions_a_trace_and_shared_prefixes(tmp_path, vllm_cpu_image):
    study = _study(tmp_path, [SESSIONS, TRACE, SHARED])
    proc = llem("run", str(study), "--yes", cwd=tmp_path, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    by_source = {}
    for run in record.runs.values():
        result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        work = study_dir / "experiments" / result.context.run_id
        by_source[result.config.prompts.source] = (
            result,
            pd.read_parquet(work / result.serving.requests_file),
        )

    result, requests = by_source["sharegpt"]
    assert result.serving.requests_failed == 0, requests["error"].dropna().tolist()
    assert len(requests) == 16 and set(requests["turn"]) == {0, 1}
    # output lengths are the reference answers' in the model's tokens, exactly (EOS ignored)
    assert (requests["output_tokens"] == requests["requested_output_tokens"]).all()
    assert requests["requested_output_tokens"].nunique() > 1
    # a second turn carries the first, its answer and the chat template: longer by the server's
    # own count, and sent at least the think time after its first turn's answer
    first = requests[requests["turn"] == 0].set_index("session")
    second = requests[requests["turn"] == 1].set_index("session")
    assert (second["input_tokens"] > first["input_tokens"] + first["output_tokens"]).all()
    assert (second["sent_s"] >= first["end_s"] + 0.2).all()

    result, requests = by_source["trace"]
    assert result.serving.requests_failed == 0, requests["error"].dropna().tolist()
    assert requests["scheduled_s"].tolist() == pytest.approx([k * 0.25 for k in range(TRACE_ROWS)])
    assert requests["output_tokens"].tolist() == [1 + k % 4 for k in range(TRACE_ROWS)]
    assert requests["input_tokens"].tolist() == [8 + k for k in range(TRACE_ROWS)]

    result, requests = by_source["shared_prefix"]
    assert result.serving.requests_failed == 0, requests["error"].dropna().tolist()
    assert (requests["input_tokens"] == 40).all()


def test_a_malformed_dataset_is_refused_at_plan_time_with_its_record(tmp_path):
    (tmp_path / "sharegpt.json").write_text(json.dumps([*SHAREGPT[:2], {"turns": []}]))
    study = write_study(
        tmp_path,
        ["model"],
        backend="vllm",
        mode="serving",
        prompts={"source": "sharegpt", "path": "sharegpt.json"},
        n_prompts=5,
        serving={"n_requests": 5},
    )
    (tmp_path / "model").mkdir()
    proc = llem("plan", str(study), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sharegpt.json: record 3: has no 'conversations' list" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
