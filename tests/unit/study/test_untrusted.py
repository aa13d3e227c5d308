"""The rules for reading what llem does not control (study/untrusted.py) and the work folder's
readers (study/work_files.py), on real files, links and FIFOs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from llenergymeasure.contract.workdir import ProgressEvent
from llenergymeasure.study import untrusted
from llenergymeasure.study.untrusted import (
    UntrustedFile,
    create_new,
    irregular,
    printable,
    read_bytes,
    read_tail,
)
from llenergymeasure.study.work_files import (
    PROGRESS_LINE_CAP,
    PROGRESS_STEP,
    ProgressTail,
    log_tail,
    read_progress,
    untrusted_entry,
)


def test_a_regular_file_within_its_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(b"x" * 100)
    assert read_bytes(path, 100) == b"x" * 100
    with pytest.raises(UntrustedFile, match="is 101 bytes, above its 100 bytes cap"):
        path.write_bytes(b"x" * 101)
        read_bytes(path, 100)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p, t: p.symlink_to(t), "is a symbolic link; llem does not follow it"),
        (lambda p, t: os.mkfifo(p), "is a FIFO, not a regular file"),
        (lambda p, t: p.symlink_to("/dev/zero"), "is a symbolic link"),
        (lambda p, t: p.mkdir(), "is a folder, not a regular file"),
        (lambda p, t: os.link(t, p), "has 2 hard links"),
    ],
)
def test_what_is_not_a_plain_file_is_refused_without_blocking(tmp_path, make, says) -> None:
    target = tmp_path / "secret"
    target.write_text("secret")
    path = tmp_path / "error.json"
    make(path, target)
    started = time.monotonic()
    with pytest.raises(UntrustedFile, match=says):
        read_bytes(path, 1 << 20)
    with pytest.raises(UntrustedFile):
        read_tail(path, 100)
    assert time.monotonic() - started < 1  # a FIFO without a writer did not block the open
    assert irregular(path) is not None
    assert untrusted_entry(tmp_path) == irregular(path)  # the run's failure names it


def test_ownership_and_privacy_are_checked_where_asked(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text("{}")
    path.chmod(0o644)
    with pytest.raises(UntrustedFile, match="must be 0600"):
        read_bytes(path, 100, owner=os.geteuid(), private=True)
    path.chmod(0o600)
    assert read_bytes(path, 100, owner=os.geteuid(), private=True) == b"{}"
    with pytest.raises(UntrustedFile, match=f"owned by uid {os.geteuid()}, not by uid 4242"):
        read_bytes(path, 100, owner=4242)


def test_a_read_that_never_returns_ends_at_its_deadline(tmp_path, monkeypatch) -> None:
    path = tmp_path / "result.json"
    path.write_text("{}")
    monkeypatch.setattr(untrusted, "_read", lambda fd, path, cap: time.sleep(5))  # a hung NFS
    started = time.monotonic()
    with pytest.raises(UntrustedFile, match=r"was not read within 0\.2 s"):
        read_bytes(path, 100, deadline_s=0.2)
    assert time.monotonic() - started < 1


def test_create_new_refuses_a_name_planted_first(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "container.log").symlink_to(victim)
    with pytest.raises(UntrustedFile, match="is already there \\(a symbolic link\\)"):
        create_new(tmp_path / "container.log")
    assert victim.read_text() == "precious"
    fd = create_new(tmp_path / "fresh.log")
    os.close(fd)


def _events(n: int) -> bytes:
    return b"".join(
        ProgressEvent(event="batch", i=i, n=n).model_dump_json().encode() + b"\n" for i in range(n)
    )


def test_progress_is_read_in_bounded_steps_and_waits_for_a_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    data = _events(5000)
    assert len(data) > PROGRESS_STEP
    path.write_bytes(data + b'{"event": "fin')
    tail = ProgressTail(path)
    first = tail.read_new()
    assert tail.behind and 0 < len(first) < 5000
    assert len(first) + len(read_progress(path)[len(first) :]) == 5000
    while tail.behind:
        tail.read_new()
    assert tail.problem is None and tail.offset == len(data)


def test_an_overlong_progress_line_or_a_fifo_stops_the_reading(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    path.write_bytes(_events(2) + b"x" * PROGRESS_LINE_CAP)
    tail = ProgressTail(path)
    assert len(tail.read_new()) == 2
    assert tail.problem == f"progress.jsonl has a line longer than {PROGRESS_LINE_CAP} bytes"
    assert tail.read_new() == []
    path.unlink()
    os.mkfifo(path)
    fifo = ProgressTail(path)
    assert fifo.read_new() == [] and "is a FIFO" in (fifo.problem or "")


def test_a_log_tail_is_printable_and_says_what_it_did_not_read(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    log.write_text("one\ntwo \x1b]0;title\x07three\n")
    assert log_tail(log, 1) == "two three"
    log.unlink()
    log.symlink_to("/etc/passwd")
    assert log_tail(log, 5) == (
        "(container.log: is a symbolic link; llem does not follow it; not read)"
    )


def test_the_host_writes_a_contract_file_over_a_planted_link_not_through_it(tmp_path) -> None:
    from llenergymeasure.study import work_files

    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "result.json").symlink_to(victim)
    event = ProgressEvent(event="started")
    work_files.write(tmp_path, "result.json", event)
    assert victim.read_text() == "precious" and not (tmp_path / "result.json").is_symlink()
    with pytest.raises(ValueError, match="not a file of the work folder's contract"):
        work_files.write(tmp_path, "../elsewhere.json", event)


def test_printable_removes_escape_sequences_and_control_characters() -> None:
    hostile = "ok\x1b]0;pwned\x07 \x1b[2J\x1b[31mred\x1b[0m\x1b]52;c;c2VjcmV0\x1b\\ bell\x07\r\n"
    assert printable(hostile) == "ok red bell\n"
    assert printable("tab\tand\nnewline stay; ünïcode too") == "tab\tand\nnewline stay; ünïcode too"
