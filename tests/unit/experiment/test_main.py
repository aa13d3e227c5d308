"""`llem-experiment`'s supervisor, run as its own process (as in a container) over children
that sleep forever, exit, or are stopped: the deadline ends the child's whole process group
and leaves error.json, an exit is passed through, SIGTERM is passed on."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.workdirs import write_workdir
from llenergymeasure.contract.workdir import CONTAINER_WORKDIR, ErrorReport, WorkPaths
from llenergymeasure.experiment import main as entry

GRACE_S = 0.5
# The supervisor over CHILD, in a process of its own: `python -c SUPERVISOR WORK DEADLINE`.
SUPERVISOR = f"""
import sys
from pathlib import Path
from llenergymeasure.experiment import main
main.DEADLINE_GRACE_S = {GRACE_S}
child = [sys.executable, "-c", sys.argv[3], sys.argv[1]]
sys.exit(main.supervise(child, float(sys.argv[2]), Path(sys.argv[1])))
"""
# Writes its pid and its own child's to WORK/pids, then does as told.
CHILD = """
import os, signal, subprocess, sys, time
from pathlib import Path
work = Path(sys.argv[1])
{setup}
grandchild = subprocess.Popen([sys.executable, "-c", {grandchild!r}])
(work / "pids").write_text(f"{{os.getpid()}} {{grandchild.pid}}")
{then}
"""
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
SLEEPER = "import time; time.sleep(600)"


def _child(then: str, setup: str = "", grandchild: str = SLEEPER) -> str:
    return CHILD.format(setup=setup, grandchild=grandchild, then=then)


def _supervise(work: Path, deadline_s: float, child: str) -> subprocess.Popen:
    work.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(work), str(deadline_s), child],
        stderr=subprocess.PIPE,
    )


def _pids(work: Path, proc: subprocess.Popen) -> list[int]:
    deadline = time.monotonic() + 30
    while not (work / "pids").is_file() or not (work / "pids").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.02)
    return [int(pid) for pid in (work / "pids").read_text().split()]


def _running(pid: int) -> bool:
    """Running, not merely a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone(pids: list[int], within_s: float = 5) -> bool:
    deadline = time.monotonic() + within_s
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_running(pid) for pid in pids)


@pytest.mark.parametrize(
    ("setup", "grandchild"),
    [
        ("", STUBBORN),  # the child ends on the SIGTERM, its own child only by SIGKILL
        ("signal.signal(signal.SIGTERM, signal.SIG_IGN)", SLEEPER),  # the child only by SIGKILL
    ],
)
def test_at_the_deadline_the_whole_group_is_ended_with_error_json_and_exit_137(
    tmp_path, setup, grandchild
):
    work = tmp_path / "work"
    started = time.monotonic()
    proc = _supervise(work, 1.5, _child("time.sleep(600)", setup, grandchild))
    pids = _pids(work, proc)
    assert proc.wait(timeout=30) == entry.EXIT_KILLED
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 1.5 + GRACE_S + 3  # the deadline, the grace, an interpreter's start
    assert _gone(pids)
    error = ErrorReport.model_validate_json((work / WorkPaths.ERROR).read_text())
    assert error.type == "DeadlineExceeded" and "1.5 s after its container started" in error.message


def test_what_the_sigterm_made_the_run_write_is_replaced_by_the_deadline(tmp_path):
    work = tmp_path / "work"
    on_term = (
        "def on_term(*_):\n"
        '    (work / \'error.json\').write_text(\'{"type": "Interrupted", "message": ""}\')\n'
        "    sys.exit(1)\n"
        "signal.signal(signal.SIGTERM, on_term)"
    )
    proc = _supervise(work, 1.0, _child("time.sleep(600)", on_term))
    _pids(work, proc)
    assert proc.wait(timeout=30) == entry.EXIT_KILLED
    assert json.loads((work / WorkPaths.ERROR).read_text())["type"] == "DeadlineExceeded"


def test_an_error_written_before_the_deadline_is_kept(tmp_path):
    work = tmp_path / "work"
    then = "(work / 'error.json').write_text('{\"type\": \"Own\"}'); time.sleep(600)"
    proc = _supervise(work, 1.0, _child(then))
    _pids(work, proc)
    assert proc.wait(timeout=30) == entry.EXIT_KILLED
    assert json.loads((work / WorkPaths.ERROR).read_text())["type"] == "Own"


@pytest.mark.parametrize(("then", "code"), [("sys.exit(3)", 3), ("sys.exit(0)", 0)])
def test_a_child_that_ends_by_itself_gives_its_exit_code_and_no_error_json(tmp_path, then, code):
    work = tmp_path / "work"
    started = time.monotonic()
    proc = _supervise(work, 30, _child(then))
    assert proc.wait(timeout=30) == code
    assert time.monotonic() - started < 10  # not the deadline
    assert not (work / WorkPaths.ERROR).exists()


def test_a_child_killed_by_a_signal_exits_as_a_shell_says(tmp_path):
    work = tmp_path / "work"
    proc = _supervise(work, 30, _child("os.kill(os.getpid(), signal.SIGKILL)"))
    assert proc.wait(timeout=30) == 128 + signal.SIGKILL
    assert not (work / WorkPaths.ERROR).exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_are_passed_on_to_the_child(tmp_path, sig):
    work = tmp_path / "work"
    on_signal = (
        "def stopped(signum, _):\n"
        "    (work / 'stopped').write_text(signal.Signals(signum).name)\n"
        "    sys.exit(1)\n"
        f"signal.signal({int(sig)}, stopped)"
    )
    proc = _supervise(work, 60, _child("time.sleep(600)", on_signal))
    _pids(work, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 1
    assert (work / "stopped").read_text() == sig.name
    assert not (work / WorkPaths.ERROR).exists()


def test_the_deadline_is_read_from_config_json(tmp_path):
    work = write_workdir(tmp_path / "work", "stub:m")
    assert entry.read_deadline(work) is None
    config = json.loads((work / WorkPaths.CONFIG).read_text())
    for value, read in [(90.5, 90.5), (0, None), (-1, None), (True, None), ("90", None)]:
        config["context"]["deadline_s"] = value
        (work / WorkPaths.CONFIG).write_text(json.dumps(config))
        assert entry.read_deadline(work) == read
    (work / WorkPaths.CONFIG).write_text("{not json")
    assert entry.read_deadline(work) is None
    assert entry.read_deadline(tmp_path / "nowhere") is None


def test_the_supervisors_own_spelling_of_the_work_folder_is_the_contracts():
    assert entry.WORKDIR == CONTAINER_WORKDIR and entry.CONFIG_FILE == WorkPaths.CONFIG
    assert entry.SETTLED_FILES == (WorkPaths.RESULT, WorkPaths.ERROR)


def test_the_supervisor_imports_nothing_but_the_standard_library_before_its_child_runs():
    code = (
        "import sys; import llenergymeasure.experiment.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'torch', 'numpy', 'transformers', 'vllm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
