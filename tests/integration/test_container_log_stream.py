"""container.log against a real engine: every byte a container printed, in order, up to the
caps (head + counted middle + tail past them), and nothing written after run_container
returned (its descriptor is closed only once the thread that wrote it has ended)."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import docker
import pytest

from helpers.integration import base_image
from llenergymeasure.config.study import DEFAULT_CONTAINER_USER
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.orchestrator.machine.container import (
    ContainerSpec,
    owner_labels,
    run_container,
)
from llenergymeasure.orchestrator.machine.container_log import LOG_CAP, LOG_TAIL
from llenergymeasure.orchestrator.machine.container_user import ContainerUser
from llenergymeasure.orchestrator.machine.stop import StopState

pytestmark = pytest.mark.docker

MARKER = b"END-OF-OUTPUT\n"
# Prints segments of numbered lines ("WIDTH:COUNT" each: COUNT lines of WIDTH bytes, numbered
# on from the segment before) as fast as it can, then the marker, then exits.
PRINTER = """
import sys
out, i = sys.stdout.buffer, 0
for segment in sys.argv[1:]:
    width, count = map(int, segment.split(":"))
    form = b"%0" + str(width - 1).encode() + b"d\\n"
    for start in range(i, i + count, 4096):
        out.write(b"".join(form % k for k in range(start, min(i + count, start + 4096))))
    i += count
out.write(b"END-OF-OUTPUT\\n")
out.flush()
"""


def _print_lines(client: docker.DockerClient, workdir: Path, *segments: tuple[int, int]) -> None:
    """Run the printer container through run_container, to its normal end."""
    spec = ContainerSpec(
        image_id=base_image(client),
        name=f"llem-test-log-{uuid.uuid4().hex[:8]}",
        labels=owner_labels(),
        workdir=workdir,
        user=ContainerUser.for_invoker(DEFAULT_CONTAINER_USER).spec,
        network_none=True,
        entrypoint=["python3", "-c", PRINTER, *(f"{w}:{n}" for w, n in segments)],
    )
    exit_ = run_container(client, spec, 300, None, StopState())
    assert (exit_.engine_error, exit_.killed_for, exit_.exit_code) == (None, None, 0)


def _numbered(width: int, stop: int, start: int = 0) -> bytes:
    form = b"%0" + str(width - 1).encode() + b"d\n"
    return b"".join(form % k for k in range(start, stop))


def test_a_container_log_holds_all_of_a_quick_burst_in_order(tmp_path, client):
    n = 1_000_000  # 16 MB of short lines printed at once, then the exit
    _print_lines(client, tmp_path, (16, n))
    log = (tmp_path / WorkPaths.CONTAINER_LOG).read_bytes()
    assert log.endswith(MARKER), log[-200:]
    assert log == _numbered(16, n) + MARKER


def test_past_the_cap_the_log_keeps_its_head_and_tail_and_counts_the_middle(tmp_path, client):
    width = 1024
    n = (LOG_CAP + (8 << 20)) // width  # 8 MiB more than the cap
    _print_lines(client, tmp_path, (width, n))
    log = (tmp_path / WorkPaths.CONTAINER_LOG).read_bytes()
    total = n * width + len(MARKER)
    head_cap = LOG_CAP - LOG_TAIL
    assert log[:head_cap] == _numbered(width, head_cap // width)
    note = re.search(rb"\n\[llem: container\.log keeps [^\n]*; (\d+) bytes between them", log)
    assert note is not None and note.start() == head_cap
    assert int(note.group(1)) == total - head_cap - LOG_TAIL
    tail = log[log.index(b"\n", note.end()) + 1 :]
    assert len(tail) == LOG_TAIL
    whole = (LOG_TAIL - len(MARKER)) // width
    assert tail.endswith(_numbered(width, n, n - whole) + MARKER)


def test_nothing_is_written_to_the_log_descriptor_after_run_container_returns(tmp_path, client):
    # 32 MB of short lines (slow to deliver: the engine sends a frame per line): the stream
    # still has seconds of output to deliver when the container exits. The next file opened
    # takes the lowest free descriptor: the log's, had it been closed while its writer ran.
    _print_lines(client, tmp_path, (16, 2_000_000))
    next_file = tmp_path / "opened-next"
    fd = os.open(next_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        time.sleep(5)
    finally:
        os.close(fd)
    assert next_file.stat().st_size == 0
    assert (tmp_path / WorkPaths.CONTAINER_LOG).read_bytes().endswith(MARKER)
