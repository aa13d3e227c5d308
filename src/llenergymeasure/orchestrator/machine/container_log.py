"""container.log: a container's stdout and stderr, streamed from the engine into the file llem
created before the container started.

One thread writes it, and that thread owns the descriptor: it closes it itself once the
stream has ended, so no descriptor is ever closed while a thread may still write it (a closed
number is reused by the next file opened, which would receive the rest of the output).

The engine ends a follow stream once the container has stopped and all its output was
delivered, so the run's end waits for that (`drain`) before the container is removed: the
end of the output, which says why a run failed, is never cut off. What the engine holds back
after the container exited is bounded (its own copy is capped, `ENGINE_LOG`), so the wait is
bounded by the engine's progress, not by a clock: it ends when the engine delivered nothing
for `LOG_IDLE_S`, or at a second stop request (quit now: `AT_ONCE_DRAIN_S` more at most). Then
the thread is told to stop (its stream is closed) and the log's last line says so. Where the
engine stopped answering, whether the container ended is unknown and its stream may never end:
it is cut at once (`cut`).

Up to the caps nothing is lost: the file keeps the first LOG_CAP - LOG_TAIL bytes and the last
LOG_TAIL bytes (how the engine started, how the run ended), with what was dropped between them
counted.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import docker.errors
import requests
from docker.types import LogConfig

from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.study.work_files import CAPS

LOG_CAP = CAPS[WorkPaths.CONTAINER_LOG]
LOG_TAIL = 1 << 20
# The engine's own copy of the output (what `docker logs` shows, and what llem streams from) is
# bounded too, so a container that prints without end fills neither the study folder nor the
# engine's disk. Well above LOG_CAP: a rotation loses what a follower has not read yet, and
# nothing of what container.log keeps may be lost.
ENGINE_LOG = LogConfig(type=LogConfig.types.JSON, config={"max-size": "256m", "max-file": "2"})
# After the container exited, an engine that delivers nothing for this long will not end the
# stream (a backlog is delivered continuously: 16-byte lines arrive at ~2 MB/s, longer ones
# faster).
LOG_IDLE_S = 30.0
# After a second stop request the output still arriving gets this long (what a killed
# container printed last is delivered within milliseconds).
AT_ONCE_DRAIN_S = 1.0
# How long a writer told to stop may take to notice; past it, it keeps its descriptor.
STOP_WAIT_S = 5.0
POLL_S = 0.05
# What docker-py raises when the engine refuses a call or its connection breaks mid-stream.
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


class ContainerLog:
    """The writer of one container.log, from the descriptor `fd` (created new, before the
    container, so nothing the container does to the name redirects it)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._cut: str | None = None  # why the stream was closed before the engine ended it
        self.received = 0  # bytes the engine delivered so far

    def follow(self, container: Any) -> None:
        """Stream `container`'s output from now on, in a thread that owns the descriptor."""
        try:
            self._stream = container.logs(stream=True, follow=True, stdout=True, stderr=True)
        except (*ENGINE_ERRORS, OSError) as error:
            self._cut = f"the engine gave no output stream ({one_line(error)})"
        thread = threading.Thread(target=self._write, daemon=True)
        thread.start()
        self._thread = thread  # from here on the writer owns the descriptor

    def drain(self, stop: StopState) -> None:
        """Once the container has exited: wait until the engine ended the stream (all the output
        delivered); an engine idle for LOG_IDLE_S, or a second stop request, ends the wait and
        the stream (the log says so)."""
        thread = self._thread
        if thread is None:
            return
        start = time.monotonic()
        seen, since = self.received, start
        while thread.is_alive():
            thread.join(POLL_S)
            now = time.monotonic()
            if self.received != seen:
                seen, since = self.received, now
            if now - since > LOG_IDLE_S:
                self._stop(
                    f"the engine delivered no output for {LOG_IDLE_S:.0f} s after the container "
                    "exited and did not end the stream"
                )
                break
            if stop.immediate and now - start > AT_ONCE_DRAIN_S:
                self._stop("llem was told to stop at once while the output was still arriving")
                break
        thread.join(STOP_WAIT_S)

    def cut(self, why: str) -> None:
        """End the stream now (the container's end is unknown: the engine stopped answering);
        the log's last line says `why`."""
        if self._thread is not None:
            self._stop(why)
            self._thread.join(STOP_WAIT_S)

    def close(self) -> None:
        """Close the descriptor if no writer was started (the container never ran); a writer
        closes its own."""
        if self._thread is None:
            os.close(self._fd)

    def _stop(self, why: str) -> None:
        self._cut = why
        # Shuts the stream's socket down: the writer's blocked read returns and its loop ends.
        with contextlib.suppress(*ENGINE_ERRORS, OSError, AttributeError):
            self._stream.close()

    def _write(self) -> None:
        head_cap = LOG_CAP - LOG_TAIL
        written = dropped = 0
        tail = bytearray()
        try:
            if self._stream is not None:
                try:
                    for chunk in self._stream:
                        self.received += len(chunk)
                        keep = chunk[: max(0, head_cap - written)]
                        if keep:
                            written += _write_all(self._fd, keep)
                        rest = chunk[len(keep) :]
                        if rest:
                            tail += rest
                            dropped += len(rest)
                            del tail[: max(0, len(tail) - LOG_TAIL)]
                except (*ENGINE_ERRORS, OSError):
                    pass  # the engine dropped the stream (or the disk refused it): keep what came
            end = b""
            if dropped:
                dropped -= len(tail)
                end += (
                    f"\n[llem: container.log keeps its first {head_cap >> 20} MiB and last "
                    f"{LOG_TAIL >> 20} MiB; {dropped} bytes between them were dropped]\n"
                ).encode() + bytes(tail)
            if self._cut is not None:
                end += f"\n[llem: container.log ends here: {self._cut}]\n".encode()
            if end:
                with contextlib.suppress(OSError):
                    _write_all(self._fd, end)
        finally:
            os.close(self._fd)


def _write_all(fd: int, data: bytes) -> int:
    """Write all of `data` (os.write may write part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
