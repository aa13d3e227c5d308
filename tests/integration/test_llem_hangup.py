"""SIGHUP (its terminal or SSH session went away) and SIGQUIT stop `llem run` as SIGTERM does:
the container stopped within its grace, the run recorded `interrupted`, exit 130. A real
`llem` on a real pseudo-terminal that is then closed; and under nohup a hangup is ignored."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from helpers.integration import LLEM, study_dirs, write_study
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker


def _progressed(folder: Path) -> bool:
    """The experiment reported progress (fault:hang handles SIGTERM from then on)."""
    dirs = study_dirs(folder)
    return bool(dirs) and any(
        p.stat().st_size for p in dirs[0].glob("experiments/*/progress.jsonl")
    )


def _wait_for_progress(folder: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not _progressed(folder):
        assert time.time() < deadline, "the experiment reported no progress"
        time.sleep(0.05)


def _run_status(folder: Path) -> set[str]:
    dirs = study_dirs(folder)
    if not dirs or not (dirs[0] / "manifest.jsonl").exists():
        return set()
    try:
        return {run.status for run in load_manifest(dirs[0]).runs.values()}
    except ValueError:
        return set()


def _llem_containers(client: docker.DockerClient) -> list:
    return client.containers.list(all=True, filters={"label": "llem.owner_pid"})


def _interrupted(folder: Path) -> None:
    (study_dir,) = study_dirs(folder)
    record = load_manifest(study_dir)
    (run,) = record.runs.values()
    assert (record.status, run.status, run.outcome) == ("interrupted", "interrupted", "interrupted")
    # fault:hang honours SIGTERM: it wrote its own error.json within the grace
    assert (study_dir / "experiments" / run.run_id / "error.json").is_file()


def test_a_closed_terminal_stops_the_study_as_sigterm_does(tmp_path, client, fault_image):
    study = write_study(tmp_path, ["fault:hang"])
    pid, terminal = pty.fork()
    if pid == 0:  # llem, with the pseudo-terminal as its controlling terminal
        os.chdir(tmp_path)
        os.execv(LLEM, [LLEM, "run", str(study)])
    shown = b""
    deadline = time.time() + 60
    while time.time() < deadline and not _progressed(tmp_path):
        if select.select([terminal], [], [], 0.05)[0]:
            shown += os.read(terminal, 65536)  # read, so llem never blocks on a full terminal
    assert _progressed(tmp_path), shown.decode(errors="replace")[-2000:]
    end = time.time() + 1  # the live view draws on the terminal meanwhile
    while time.time() < end:
        if select.select([terminal], [], [], 0.05)[0]:
            shown += os.read(terminal, 65536)
    assert b"fault:hang" in shown  # the live view's line of the run
    closed = time.time()
    os.close(terminal)  # the kernel hangs llem's terminal up: SIGHUP, and writes fail (EIO)
    status = None
    while time.time() < closed + 30:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("llem did not end within 30 s of its terminal's hangup")
    assert os.waitstatus_to_exitcode(status) == 130
    assert time.time() - closed < 2 + 4  # grace + slack
    _interrupted(tmp_path)
    assert _llem_containers(client) == []


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT])
def test_sighup_and_sigquit_stop_the_study_as_sigterm_does(tmp_path, client, fault_image, sig):
    study = write_study(tmp_path, ["fault:hang"])
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _wait_for_progress(tmp_path)
    sent = time.time()
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 130, proc.stderr.read().decode() if proc.stderr else ""
    assert time.time() - sent < 2 + 4
    _interrupted(tmp_path)
    assert _llem_containers(client) == []


def test_under_nohup_a_hangup_leaves_the_study_running(tmp_path, client, fault_image):
    study = write_study(tmp_path, ["fault:ok-30"])  # 3 s of progress, then a result
    proc = subprocess.Popen(
        ["nohup", LLEM, "run", str(study)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_progress(tmp_path)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 0
    assert _run_status(tmp_path) == {"completed"}
