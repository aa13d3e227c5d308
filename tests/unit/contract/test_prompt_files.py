"""A prompt file that cannot give the run's requests is one message naming the file and the
record: missing, empty, too big, not the declared format or UTF-8, nested too deep, a record short
of its field, a trace going back in time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure.contract.prompt_files import (
    MAX_PROMPT_FILE_BYTES,
    PromptFileError,
    read_requests,
)
from llenergymeasure.contract.prompt_sources import (
    ChatJsonlPrompts,
    JsonlPrompts,
    SharegptPrompts,
    TracePrompts,
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "source", "message"),
    [
        ("s.json", "", SharegptPrompts, "is empty"),
        ("s.json", '{"conversations": []}', SharegptPrompts, "top level must be a list"),
        ("s.json", "[{", SharegptPrompts, "is not ShareGPT JSON"),
        ("s.json", '[{"id": 1}]', SharegptPrompts, "record 1: has no 'conversations' list"),
        (
            "s.json",
            json.dumps([{"conversations": [{"from": "human", "value": 3}, {"value": "x"}]}]),
            SharegptPrompts,
            "record 1: a turn has no string 'value'",
        ),
        (
            "c.jsonl",
            '{"messages": [{"role": "system", "content": "x"}]}\n',
            ChatJsonlPrompts,
            "record 1: has no user message",
        ),
        ("c.jsonl", '{"messages": "hi"}\n', ChatJsonlPrompts, "record 1: has no list of messages"),
        ("p.jsonl", '{"prompt": "a"}\nnot json\n', JsonlPrompts, "record 2: not valid JSON"),
        ("t.csv", "TIMESTAMP,ContextTokens\n1,2\n", TracePrompts, "record 2: lacks a column"),
        (
            "t.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2,5,5\n1,5,5\n",
            TracePrompts,
            "record 3: goes back in time",
        ),
        (
            "t.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\nnoon,5,5\n",
            TracePrompts,
            "neither seconds nor",
        ),
        (
            "t.jsonl",
            '{"TIMESTAMP": 0, "ContextTokens": 0, "GeneratedTokens": 3}\n',
            TracePrompts,
            "at least 1 token",
        ),
    ],
)
def test_a_bad_file_names_the_file_and_record(tmp_path, name, text, source, message) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(PromptFileError, match=message) as raised:
        read_requests(source(source=_tag(source), path=str(path)), 5)
    assert str(path) in str(raised.value)


def _tag(source: type) -> str:
    return {
        SharegptPrompts: "sharegpt",
        ChatJsonlPrompts: "chat_jsonl",
        JsonlPrompts: "jsonl",
        TracePrompts: "trace",
    }[source]


def test_a_missing_file_and_a_short_file(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError, match="does not exist"):
        read_requests(JsonlPrompts(source="jsonl", path=str(tmp_path / "none.jsonl")), 1)
    path = _write(tmp_path, "p.jsonl", '{"prompt": "a"}\n')
    with pytest.raises(PromptFileError, match=r"gives 1 request\(s\) but n_prompts is 3"):
        read_requests(JsonlPrompts(source="jsonl", path=str(path)), 3)


def test_an_output_length_field_is_a_count_or_an_answer(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "p.jsonl",
        '{"prompt": "a", "n": 7}\n{"prompt": "b", "n": "an answer"}\n{"prompt": "c", "n": 0}\n',
    )
    source = JsonlPrompts(source="jsonl", path=str(path), output_length_field="n")
    first, second = read_requests(source, 2)
    assert (first.output_tokens, second.answer) == (7, "an answer")
    with pytest.raises(PromptFileError, match="record 3: field 'n' is neither"):
        read_requests(source, 3)


def test_a_file_above_the_size_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as handle:  # sparse: takes no disk, and reading it would take a GiB
        handle.truncate(MAX_PROMPT_FILE_BYTES + 1)
    with pytest.raises(PromptFileError, match=r"above the 1,073,741,824 \(1 GiB\)") as raised:
        read_requests(SharegptPrompts(source="sharegpt", path=str(path)), 1)
    assert str(path) in str(raised.value)


DEEP = "[" * 100_000 + "]" * 100_000


def test_a_deeply_nested_record_names_its_record(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.jsonl", '{"prompt": "a"}\n{"prompt": "b", "x": ' + DEEP + "}\n")
    with pytest.raises(PromptFileError, match="record 2: nested more than 100 levels deep"):
        read_requests(JsonlPrompts(source="jsonl", path=str(path)), 2)
    trace = _write(tmp_path, "t.jsonl", DEEP + "\n")
    with pytest.raises(PromptFileError, match="record 1: nested more than 100 levels deep"):
        read_requests(TracePrompts(source="trace", path=str(trace)), 1)


def test_a_deeply_nested_sharegpt_file_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.json", '[\n{"conversations": []},\n' + DEEP + "\n]\n")
    with pytest.raises(PromptFileError, match=r"is nested more than 100 levels deep \(line 3\)"):
        read_requests(SharegptPrompts(source="sharegpt", path=str(path)), 1)


def test_a_file_that_is_not_utf8_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(PromptFileError, match="is not UTF-8 text"):
        read_requests(JsonlPrompts(source="jsonl", path=str(path)), 1)
