"""What a container leaves in its work folder is untrusted: real containers plant links, FIFOs,
/dev/zero and huge files where the host reads, and llem records a clear failure for that run,
reads nothing through a link, and goes on with the study (README: Security)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.integration import LLEM, llem, study_dirs, write_study
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker

SECRET = "root-only-secret-7f3a"


def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def _run_with_trap(tmp_path: Path, trap: str, **execution: float):
    """A study of the trap, then an ordinary run; the manifest's two records."""
    study = write_study(tmp_path, [trap, "fault:ok-1"], execution=execution or None)
    proc = llem("run", str(study), cwd=tmp_path, timeout=120)
    (study_dir,) = study_dirs(tmp_path)
    runs = sorted(load_manifest(study_dir).runs.values(), key=lambda r: r.run_index)
    assert runs[1].status == "completed", (proc.stderr, runs[1])  # the study went on
    assert proc.returncode == 1, proc.stderr
    return study_dir, runs[0], proc


def _nothing_of(secret: str, *places: str | Path) -> None:
    for place in places:
        if isinstance(place, Path):
            texts = [p.read_text(errors="replace") for p in place.rglob("*") if _plain(p)]
        else:
            texts = [place]
        assert not any(secret in text for text in texts), f"{secret!r} leaked into {place}"


def _plain(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 24


def test_log_linked_to_a_root_only_file_is_not_read_nor_written(tmp_path, fault_image):
    secret = _secret_file(tmp_path)
    study_dir, run, proc = _run_with_trap(tmp_path, f"fault:link-log:{secret}")
    assert (run.outcome, run.error_type) == ("failed", "UntrustedWorkFile"), run
    assert "container.log is a symbolic link" in (run.error or "")
    assert "not read" in (run.log_tail or "")
    assert secret.read_text() == SECRET + "\n"  # the container's output went nowhere near it
    _nothing_of(SECRET, study_dir, proc.stdout, proc.stderr)


def test_error_json_linked_to_a_root_only_file_is_not_read(tmp_path, fault_image):
    secret = _secret_file(tmp_path)
    study_dir, run, proc = _run_with_trap(tmp_path, f"fault:link-error:{secret}")
    assert (run.outcome, run.error_type) == ("failed", "UntrustedWorkFile"), run
    assert "error.json is a symbolic link" in (run.error or "")
    _nothing_of(SECRET, study_dir, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    ("trap", "error_type", "says"),
    [
        ("fault:fifo-result", "UntrustedWorkFile", "result.json is a FIFO"),
        ("fault:zero-result", "UntrustedWorkFile", "result.json is a symbolic link"),
        ("fault:big-result", "InvalidResult", "result.json: is 2.0 GiB, above its 16.0 MiB cap"),
    ],
)
def test_a_result_llem_must_not_read_fails_the_run_at_once(
    tmp_path, fault_image, trap, error_type, says
):
    started = time.monotonic()
    _, run, _ = _run_with_trap(tmp_path, trap)
    assert (run.outcome, run.error_type) == ("failed", error_type), run
    assert says in (run.error or "")
    assert time.monotonic() - started < 60  # no read blocked, nothing was buffered


@pytest.mark.parametrize(
    ("trap", "says"),
    [
        ("fault:fifo-progress", "progress.jsonl is a FIFO"),
        ("fault:long-line", "progress.jsonl has a line longer than 65536 bytes"),
    ],
)
def test_a_broken_progress_file_stops_the_container(tmp_path, fault_image, trap, says):
    # Without the contract check only the 60 s timeout would end these runs.
    _, run, _ = _run_with_trap(tmp_path, trap, stall_timeout_s=60)
    assert (run.outcome, run.error_type) == ("failed", "UntrustedWorkFile"), run
    assert says in (run.error or "") and "the container was stopped" in (run.error or "")
    assert run.duration_s < 20


def test_ctrl_c_still_works_after_a_fifo_in_place_of_progress(tmp_path, fault_image):
    # A FIFO where llem follows progress used to block its loop for good: no Ctrl+C, no study.
    study = write_study(tmp_path, ["fault:fifo-progress", "fault:hang"])
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    second = None
    while second is None and time.monotonic() < deadline:
        dirs = [d for d in study_dirs(tmp_path) if (d / "manifest.jsonl").is_file()]
        runs = (
            sorted(load_manifest(dirs[0]).runs.values(), key=lambda r: r.run_index) if dirs else []
        )
        second = runs[1] if len(runs) == 2 and runs[1].status == "running" else None
        time.sleep(0.2)
    assert second is not None, "the study never went on to its second run"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("llem did not stop within 15 s of Ctrl+C")
    assert proc.returncode == 130, stderr
    first, second = sorted(load_manifest(dirs[0]).runs.values(), key=lambda r: r.run_index)
    assert first.error_type == "UntrustedWorkFile" and second.status == "interrupted"


def test_container_text_reaches_the_terminal_and_csv_inert(tmp_path, fault_image):
    study_dir, run, proc = _run_with_trap(tmp_path, "fault:escape")
    assert run.error_type == "Hostile" and run.error.startswith("=HYPERLINK(1)")
    assert "\x1b" not in run.error and "\x07" not in run.error
    for stream in (proc.stdout, proc.stderr):
        assert "\x1b]" not in stream and "\x07" not in stream and "\x1b[2J" not in stream
    status = llem("status", str(study_dir), cwd=tmp_path)
    assert "\x1b]" not in status.stdout and "\x07" not in status.stdout
    csv = (study_dir / "results.csv").read_text()
    assert "'=HYPERLINK(1)" in csv and ",=HYPERLINK" not in csv


def test_a_chatty_container_leaves_a_capped_log_and_the_study_goes_on(tmp_path, fault_image):
    study = write_study(tmp_path, ["fault:chatty", "fault:ok-1"])
    proc = llem("run", str(study), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (study_dir,) = study_dirs(tmp_path)
    logs = sorted(study_dir.glob("experiments/*/container.log"))
    cap = 64 << 20
    assert cap <= logs[0].stat().st_size < cap + 200
    data = logs[0].read_bytes()
    # its head and its end (80 MiB printed, then the experiment's last words), the middle counted
    assert data.startswith(b"fault image: fault:chatty\n")
    assert b"bytes between them were dropped]\n" in data[-(2 << 20) :]
    assert data.rstrip().endswith(b"x" * 100)


def test_a_study_under_a_path_with_a_colon_runs(tmp_path, fault_image):
    folder = tmp_path / "runs:2026"
    folder.mkdir()
    study = write_study(folder, ["fault:ok-1"])
    proc = llem("run", str(study), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    (study_dir,) = study_dirs(folder)
    (run,) = load_manifest(study_dir).runs.values()
    assert run.status == "completed"
