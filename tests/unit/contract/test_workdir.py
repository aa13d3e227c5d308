"""Work-folder helpers: atomic writes, progress lines, capped tracebacks, folder names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llenergymeasure.contract.workdir import (
    TRACEBACK_CAP_BYTES,
    ErrorReport,
    ProgressEvent,
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    run_dir_name,
)
from llenergymeasure.study.work_files import ProgressTail, read_progress


def test_run_dir_name_sorts_and_names() -> None:
    assert run_dir_name(7, "0123456789abcdef", 2) == "0007_01234567_c2"
    names = [run_dir_name(i, "ff" * 32, 0) for i in (2, 10, 1)]
    assert sorted(names) == [names[2], names[0], names[1]]


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    atomic_write_json(target, {"c": 3})
    assert json.loads(target.read_text()) == {"c": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    atomic_write_text(target, "old")

    class Boom:  # not bytes: the write into the temporary file fails
        pass

    with pytest.raises(TypeError):
        atomic_write_bytes(target, Boom())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_progress_lines_round_trip_and_partial_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    append_jsonl(path, ProgressEvent(event="started"))
    append_jsonl(path, ProgressEvent(event="batch", i=1, n=4))
    with open(path, "a") as handle:
        handle.write('{"event": "batch", "i": 2')  # a writer caught mid-line
    events = read_progress(path)
    assert [e.event for e in events] == ["started", "batch"]
    assert (events[1].i, events[1].n) == (1, 4)
    assert read_progress(tmp_path / "absent.jsonl") == []


def test_progress_tail_reads_each_event_once_and_waits_for_a_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    tail = ProgressTail(path)
    assert tail.read_new() == []  # not written yet
    append_jsonl(path, ProgressEvent(event="started"))
    with open(path, "a") as handle:
        handle.write('{"event": "batch", "i": 2')
    assert [e.event for e in tail.read_new()] == ["started"]
    with open(path, "a") as handle:
        handle.write(', "n": 4}\n')
    append_jsonl(path, ProgressEvent(event="finished"))
    fresh = tail.read_new()
    assert [(e.event, e.i) for e in fresh] == [("batch", 2), ("finished", None)]
    assert tail.read_new() == [] and tail.offset == path.stat().st_size


def test_error_report_keeps_the_end_of_a_long_traceback() -> None:
    long = "frame\n" * 5000 + "the real cause"
    report = ErrorReport.capped("RuntimeError", "failed", long)
    assert len(report.traceback.encode()) <= TRACEBACK_CAP_BYTES
    assert report.traceback.endswith("the real cause")
    assert report.traceback.startswith("...[truncated]")
