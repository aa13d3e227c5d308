"""Reading a prompt file (jsonl, sharegpt, chat_jsonl, trace) into requests, standard library
only: the container builds its prompts with it and the host runs it at plan time, so a file
that is missing, empty, too big, not the declared format or short of a field is one message
naming the file and the record before any container starts.

`read_requests` checks what every file must be (a regular file, not empty, at most
`MAX_PROMPT_FILE_BYTES`) and asks the source to read its format (each source's `read_file`, one
of the readers below). JSON is parsed with the nesting cap of `nesting.py`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from llenergymeasure.contract.nesting import NestingError, load_json

# Far above a real prompt set (all of ShareGPT is about 650 MB), and below what parsing into
# Python objects (several times the file) may take of a host or a container.
MAX_PROMPT_FILE_BYTES = 1 << 30
# ISO date-times with more than microseconds (the Azure traces write 7 digits).
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


class PromptFileError(ValueError):
    """A prompt file that cannot give the configured requests; the message names the file and,
    where one is at fault, the record (1-based: a line, or an element of a JSON list)."""

    def __init__(self, path: Path, message: str, record: int | None = None) -> None:
        where = f"{path}" if record is None else f"{path}: record {record}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FileRequest:
    """One request a file gives: a prompt text or a conversation, and what fixes its output
    length (a reference answer's text, or a token count)."""

    text: str | None = None
    messages: list[dict[str, str]] | None = None
    answer: str | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None  # trace: the prompt is synthetic, exactly this long
    arrival_s: float | None = None  # trace: offset from the first arrival, scaled


class FileSource(Protocol):
    """A prompt source read from a file (`prompt_sources.PromptFileSource`)."""

    @property
    def path(self) -> str: ...

    def read_file(self, path: Path, count: int) -> list[FileRequest]: ...


def read_requests(source: FileSource, count: int, path: Path | None = None) -> list[FileRequest]:
    """The first `count` requests of the file (`path`: where it is, when not `source.path`)."""
    where = path or Path(source.path)
    if not where.is_file():
        raise PromptFileError(where, "does not exist (or is not a file)")
    size = where.stat().st_size
    if size == 0:
        raise PromptFileError(where, "is empty")
    if size > MAX_PROMPT_FILE_BYTES:
        raise PromptFileError(
            where,
            f"is {size:,} bytes, above the {MAX_PROMPT_FILE_BYTES:,} (1 GiB) a prompt file may "
            "have; give the records the runs need (the first n_prompts)",
        )
    try:
        found = source.read_file(where, count)
    except UnicodeDecodeError as exc:
        raise PromptFileError(where, f"is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise PromptFileError(where, f"cannot be read ({exc.strerror or exc})") from exc
    if len(found) < count:
        raise PromptFileError(
            where, f"gives {len(found)} request(s) but n_prompts is {count}; lower n_prompts"
        )
    return found


def _json_lines(path: Path, count: int) -> list[tuple[int, Any]]:
    """(line number, parsed value) of the non-blank lines, until `count` are read."""
    out: list[tuple[int, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                out.append((number, load_json(line)))
            except json.JSONDecodeError as exc:
                raise PromptFileError(path, f"not valid JSON ({exc.msg})", number) from exc
            except NestingError as exc:
                raise PromptFileError(path, str(exc), number) from exc
            if len(out) == count:
                break
    return out


def jsonl_requests(
    path: Path, count: int, field: str, output_length_field: str | None
) -> list[FileRequest]:
    """JSONL: the prompt text in `field`, the output length (optional) in another."""
    requests = []
    for number, record in _json_objects(path, count):
        text = record.get(field)
        if not isinstance(text, str):
            raise PromptFileError(path, f"has no string field '{field}'", number)
        requests.append(_with_length(path, number, record, output_length_field, text))
    return requests


def chat_requests(path: Path, count: int, field: str) -> list[FileRequest]:
    """OpenAI-chat JSONL: the messages in `field`."""
    return [
        _chat(path, number, record.get(field), field)
        for number, record in _json_objects(path, count)
    ]


def _json_objects(path: Path, count: int) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, record in _json_lines(path, count):
        if not isinstance(record, dict):
            raise PromptFileError(path, "is not a JSON object", number)
        yield number, record


def _with_length(
    path: Path, number: int, record: dict[str, Any], field: str | None, text: str
) -> FileRequest:
    if field is None:
        return FileRequest(text=text)
    value = record.get(field)
    if isinstance(value, str) and value:
        return FileRequest(text=text, answer=value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return FileRequest(text=text, output_tokens=value)
    raise PromptFileError(
        path, f"field '{field}' is neither a positive token count nor an answer's text", number
    )


def _chat(path: Path, number: int, messages: Any, field: str) -> FileRequest:
    if not isinstance(messages, list) or not messages:
        raise PromptFileError(path, f"has no list of messages in '{field}'", number)
    for message in messages:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise PromptFileError(path, "a message lacks a string 'role' or 'content'", number)
    users = [k for k, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise PromptFileError(path, "has no user message", number)
    last = users[-1]
    answer = "".join(m["content"] for m in messages[last + 1 :]) or None
    sent = [{"role": m["role"], "content": m["content"]} for m in messages[: last + 1]]
    return FileRequest(messages=sent, answer=answer)


def sharegpt_requests(path: Path, count: int) -> list[FileRequest]:
    """ShareGPT JSON: the first turn of each conversation, the second as its answer."""
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PromptFileError(path, f"is not ShareGPT JSON ({exc.msg}, line {exc.lineno})") from exc
    except NestingError as exc:
        raise PromptFileError(path, f"is {exc} (line {exc.line})") from exc
    if not isinstance(data, list):
        raise PromptFileError(path, "is not ShareGPT JSON: the top level must be a list")
    requests = []
    for number, record in enumerate(data, start=1):
        turns = record.get("conversations") if isinstance(record, dict) else None
        if not isinstance(turns, list):
            raise PromptFileError(path, "has no 'conversations' list", number)
        if len(turns) < 2:
            continue  # no answer to take a length from: skipped, as vllm bench does
        values = [t.get("value") if isinstance(t, dict) else None for t in turns[:2]]
        if not all(isinstance(v, str) for v in values):
            raise PromptFileError(path, "a turn has no string 'value'", number)
        requests.append(FileRequest(text=values[0], answer=values[1]))
        if len(requests) == count:
            break
    return requests


def trace_requests(
    path: Path, count: int, columns: tuple[str, str, str], time_scale: float
) -> list[FileRequest]:
    """A trace, CSV or JSONL by the suffix: per row (timestamp, input tokens, output tokens) in
    `columns`; arrivals relative to the first row, times `time_scale`."""
    rows = _csv_rows(path, count) if path.suffix.lower() == ".csv" else _json_lines(path, count)
    timestamp, inputs, outputs = columns
    requests: list[FileRequest] = []
    first = previous = None
    for number, row in rows:
        if not isinstance(row, dict) or any(c not in row for c in columns):
            raise PromptFileError(
                path, f"lacks a column of {', '.join(columns)} (prompts.*_column)", number
            )
        t = _seconds(path, number, row[timestamp])
        if previous is not None and t < previous:
            raise PromptFileError(path, "goes back in time: arrivals must not decrease", number)
        first = t if first is None else first
        previous = t
        requests.append(
            FileRequest(
                input_tokens=_tokens(path, number, row[inputs], inputs),
                output_tokens=_tokens(path, number, row[outputs], outputs),
                arrival_s=(t - first) * time_scale,
            )
        )
    return requests


def _csv_rows(path: Path, count: int) -> list[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            rows.append((reader.line_num, row))
            if len(rows) == count:
                break
    return rows


def _seconds(path: Path, number: int, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(_LONG_FRACTION.sub(r"\1", text)).timestamp()
    except ValueError as exc:
        raise PromptFileError(
            path, f"timestamp {text!r} is neither seconds nor an ISO date-time", number
        ) from exc


def _tokens(path: Path, number: int, value: Any, column: str) -> int:
    try:
        tokens = int(str(value).strip())
    except ValueError as exc:
        raise PromptFileError(path, f"{column} {value!r} is not a token count", number) from exc
    if tokens < 1:
        raise PromptFileError(path, f"{column} is {tokens}: at least 1 token", number)
    return tokens
