"""The display on a terminal that goes away mid-study (a real pseudo-terminal, hung up): it
goes quiet instead of raising, and nothing later in the process fails on that terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from helpers.factories import run_record
from llenergymeasure.orchestrator.display import Display, QuietOnFailure

# Stdout and stderr are the terminal. The live view runs; once the terminal is gone every
# kind of output is tried again, then a plain print; exit 0 only if none of it raised and the
# interpreter's final flush did not fail either (that exits 120).
STUDY_ON_A_TERMINAL = """
import sys, time
from helpers.factories import run_record
from llenergymeasure.orchestrator.display import Display
display = Display()
assert display.live, "not a terminal"
display.start(3, 0)
display.note("before the hangup")
deadline = time.monotonic() + 20
while not display.output.gone and time.monotonic() < deadline:
    display.note("tick")
    time.sleep(0.05)
assert display.output.gone, "the writes never failed"
display.gap(5, "gap")
display.gap_left(4)
display.refresh(force=True)
display.run_finished(run_record(status="completed", outcome="completed"), "done")
display.note("after the hangup")
display.stop()
print("a plain print after the hangup " * 100)
sys.stderr.write("and stderr\\n")
open(sys.argv[1], "w").write("went on")
"""


def test_a_terminal_that_goes_away_silences_the_display_and_nothing_fails(tmp_path: Path):
    master, terminal = os.openpty()
    survived = tmp_path / "survived"
    tests = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", STUDY_ON_A_TERMINAL, str(survived)],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 60
    while b"before the hangup" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(master, 65536)
        except OSError:  # the child ended (and its side of the terminal closed)
            break
    assert b"before the hangup" in seen, seen[-2000:]
    os.close(master)  # the terminal goes away: the child's writes now fail with EIO
    assert proc.wait(timeout=60) == 0
    assert survived.read_text() == "went on"


def test_an_output_that_fails_goes_quiet_and_keeps_the_text_count():
    class Failing(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    output = QuietOnFailure(Failing())
    assert output.write("x" * 5) == 5 and output.gone
    output.flush()
    assert not output.isatty()


def test_a_display_on_a_string_buffer_writes_there():
    buffer = io.StringIO()
    display = Display(Console(file=buffer, highlight=False))
    display.note("hello")
    display.run_finished(run_record(status="completed", outcome="completed"), "done")
    assert "hello" in buffer.getvalue() and "completed done" in buffer.getvalue()
    assert not display.output.gone
