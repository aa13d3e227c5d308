"""The load generator against the stand-in OpenAI-compatible server (benchmarks/
openai_standin.py, its own process on loopback): chat requests, multi-turn sessions carrying
their conversation, per-request output lengths and trace arrivals, as the server received them."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.experiment.prompts import PromptSet
from llenergymeasure.experiment.serving.loadgen import LoadGenerator
from llenergymeasure.experiment.serving.servers import free_port
from llenergymeasure.experiment.serving.workload import Workload

pytest.importorskip("aiohttp")
STANDIN = Path(__file__).parents[4] / "benchmarks" / "openai_standin.py"


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, log = free_port(), tmp_path / "calls.jsonl"
    process = subprocess.Popen(
        [sys.executable, str(STANDIN), "--port", str(port), "--gap-ms", "2", "--log", str(log)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def _words(ids: list[int]) -> str:
    return " ".join(f"w{t}" for t in ids)


def _run(url: str, config: ExperimentConfig, prompts: PromptSet) -> list[Any]:
    workload = Workload(
        config, prompts, _words, lambda m: [0] * sum(len(x["content"].split()) for x in m)
    )
    records = workload.records()
    LoadGenerator(url, workload, records, lambda: True).run(time.perf_counter())
    return records


def _config(prompts: dict[str, Any] | None = None, **serving: Any) -> ExperimentConfig:
    return ExperimentConfig(
        model="m",
        backend="vllm",
        mode="serving",
        max_new_tokens=6,
        n_prompts=4,
        prompts=prompts or {"source": "synthetic"},
        serving=serving,
    )


def test_sessions_carry_the_conversation_and_wait_for_the_answer_and_think_time(standin) -> None:
    url, log = standin
    config = _config(
        request_rate=50, n_requests=6, endpoint="chat", sessions={"turns": 3, "think_time_s": 0.05}
    )
    records = _run(url, config, PromptSet([[1, 2], [3], [4, 5, 6], [7]]))
    assert len(records) == 6 and all(r.ok for r in records), [r.error for r in records]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    by_turns = sorted(calls, key=lambda c: len(c["messages"]))
    assert [len(c["messages"]) for c in by_turns] == [1, 1, 3, 3, 5, 5]
    third = next(
        c for c in calls if c["messages"][0]["content"] == "w1 w2" and len(c["messages"]) == 5
    )
    assert [m["role"] for m in third["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert third["messages"][1]["content"] == " w" * 6  # the answer streamed back, as sent
    assert [m["content"] for m in third["messages"][::2]] == ["w1 w2", "w3", "w4 w5 w6"]
    for first, second in itertools.pairwise(records):
        if second.session == first.session:
            assert second.sent_s >= first.end_s + 0.05
            assert second.scheduled_s == pytest.approx(first.end_s + 0.05)
    assert {r.input_tokens for r in records if r.turn == 0} == {2, 1}  # the server's own count


def test_output_lengths_from_the_dataset_are_what_the_server_is_asked_and_streams(standin) -> None:
    url, log = standin
    config = _config({"source": "sharegpt", "path": "s.json"}, request_rate=100, n_requests=4)
    prompts = PromptSet([[1], [2], [3], [4]], output_tokens=[2, 9, 1, 4])
    records = _run(url, config, prompts)
    assert [r.max_tokens for r in records] == [2, 6, 1, 4]  # 9 capped at max_new_tokens
    assert [r.output_tokens for r in records] == [2, 6, 1, 4]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(c["max_tokens"] for c in calls) == [1, 2, 4, 6]
    assert all(c["ignore_eos"] and c["prompt"] for c in calls)


def test_a_trace_is_replayed_at_its_scaled_times(standin) -> None:
    url, _ = standin
    config = ExperimentConfig(
        model="m",
        backend="vllm",
        mode="serving",
        max_new_tokens=4,
        n_prompts=4,
        prompts={"source": "trace", "path": "t.csv", "time_scale": 0.5},
        serving={},
    )
    prompts = PromptSet(
        [[1], [2], [3], [4]], output_tokens=[1, 2, 3, 4], arrivals_s=[0, 0.1, 0.3, 0.3]
    )
    records = _run(url, config, prompts)
    assert [r.scheduled_s for r in records] == [0, 0.1, 0.3, 0.3]
    assert all(abs(r.sent_s - r.scheduled_s) < 0.05 for r in records)
    assert [r.output_tokens for r in records] == [1, 2, 3, 4]


def test_a_stop_check_ends_the_load_and_cancels_what_is_in_flight(standin) -> None:
    url, _ = standin
    config = _config(request_rate=20, n_requests=40)
    workload = Workload(config, PromptSet([[1], [2], [3], [4]]), _words, lambda m: [0])
    records = workload.records()
    stop_at = 0.5

    def check(now: float) -> str | None:
        return "enough" if now >= stop_at else None

    generator = LoadGenerator(url, workload, records, lambda: True, check, check_every_s=0.1)
    start = time.perf_counter()
    generator.run(start)
    assert generator.stopped == "enough"
    assert time.perf_counter() - start < 1.5  # not the 2 s the whole load takes
    done = [r for r in records if r.ok]
    unsent = [r for r in records if r.error == "not sent: the stage was stopped early"]
    assert (
        done
        and unsent
        and len(done)
        + len(unsent)
        + sum(1 for r in records if r.error == "cancelled: the stage was stopped early")
        == len(records)
    )
    assert all(r.sent_s is None for r in unsent)
    assert max(r.sent_s for r in done) < stop_at + 0.15
