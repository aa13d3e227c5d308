"""ContainerLog where the engine misbehaves (tests/integration/test_container_log_stream.py
runs it against a real engine): a stream that never ends is cut, the log's last line says
why, and the descriptor is closed by its writer alone."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from llenergymeasure.orchestrator.machine import container_log
from llenergymeasure.orchestrator.machine.container_log import ContainerLog
from llenergymeasure.orchestrator.machine.stop import StopState


class EndlessStream:
    """A follow stream the engine never ends: `lines` first, then `more` forever (or silence),
    until closed."""

    def __init__(self, lines: list[bytes], more: bytes | None = None) -> None:
        self.lines, self.more = lines, more
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield from self.lines
        while not self.closed.wait(0.01):
            if self.more is not None:
                yield self.more

    def close(self) -> None:
        self.closed.set()


class Container:
    def __init__(self, stream: EndlessStream | None) -> None:
        self.stream = stream

    def logs(self, **_: object) -> EndlessStream:
        if self.stream is None:
            raise docker.errors.APIError("no such container")
        return self.stream


def _open(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_stream_the_engine_never_ends_is_cut_once_idle(tmp_path, monkeypatch):
    monkeypatch.setattr(container_log, "LOG_IDLE_S", 0.3)
    path = tmp_path / "container.log"
    fd = _open(path)
    log = ContainerLog(fd)
    log.follow(Container(EndlessStream([b"loading\n", b"failed: why\n"])))
    started = time.monotonic()
    log.drain(StopState())
    assert 0.3 <= time.monotonic() - started < 2
    text = path.read_text()
    assert text.startswith("loading\nfailed: why\n")
    assert text.endswith("]\n") and "delivered no output" in text.splitlines()[-1]
    assert not _is_open(fd)


def test_a_second_stop_request_cuts_a_stream_still_delivering(tmp_path, monkeypatch):
    monkeypatch.setattr(container_log, "AT_ONCE_DRAIN_S", 0.2)
    path = tmp_path / "container.log"
    log = ContainerLog(_open(path))
    log.follow(Container(EndlessStream([], more=b"x" * 100 + b"\n")))
    stop = StopState()
    stop.request()
    stop.request()
    started = time.monotonic()
    log.drain(stop)
    assert time.monotonic() - started < 1.5
    assert "told to stop at once" in path.read_text().splitlines()[-1]


def test_a_cut_ends_the_stream_at_once_and_says_why(tmp_path):
    path = tmp_path / "container.log"
    fd = _open(path)
    log = ContainerLog(fd)
    log.follow(Container(EndlessStream([b"running\n"])))
    started = time.monotonic()
    log.cut("the engine stopped answering")
    assert time.monotonic() - started < 1
    assert path.read_text().endswith("ends here: the engine stopped answering]\n")
    assert not _is_open(fd)


def test_a_stream_the_engine_refused_leaves_a_log_that_says_so(tmp_path):
    path = tmp_path / "container.log"
    fd = _open(path)
    log = ContainerLog(fd)
    log.follow(Container(None))
    log.drain(StopState())
    assert "the engine gave no output stream (no such container)" in path.read_text()
    assert not _is_open(fd)
    reused = _open(tmp_path / "next")  # takes the freed number
    log.close()  # the writer closed its descriptor: this must not close the next file's
    assert _is_open(reused)
    os.close(reused)


def test_without_a_writer_close_closes_the_descriptor(tmp_path):
    fd = _open(tmp_path / "container.log")
    ContainerLog(fd).close()
    assert not _is_open(fd)


@pytest.mark.parametrize("chunks", [[b"a\n" * 10], [b"one\n", b"", b"two\n"]])
def test_a_stream_that_ends_is_written_whole_without_a_note(tmp_path, chunks):
    class Ending(EndlessStream):
        def __iter__(self) -> Iterator[bytes]:
            yield from self.lines

    path = tmp_path / "container.log"
    log = ContainerLog(_open(path))
    log.follow(Container(Ending(chunks)))
    log.drain(StopState())
    assert path.read_bytes() == b"".join(chunks)
