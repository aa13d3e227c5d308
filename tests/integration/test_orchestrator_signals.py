"""Real signals to a real `llem` process; `kill -9` at random instants, then --resume."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from helpers.integration import LLEM, llem, study_dirs, write_study
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker


def _start(study: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [LLEM, "run", str(study)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_status(folder: Path, status: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        dirs = study_dirs(folder)
        if dirs and (dirs[0] / "manifest.jsonl").exists():
            try:
                runs = load_manifest(dirs[0]).runs.values()
            except ValueError:
                runs = []
            if any(r.status == status for r in runs):
                return
        time.sleep(0.05)
    raise AssertionError(f"no run reached {status}")


def _containers(client: docker.DockerClient) -> list:
    return client.containers.list(all=True, filters={"label": "llem.owner_pid"})


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_stops_the_container_and_records_interrupted(
    tmp_path, client, fault_image, sig
):
    study = write_study(tmp_path, ["fault:hang"])
    proc = _start(study, tmp_path)
    _wait_for_status(tmp_path, "running")
    time.sleep(0.5)
    sent = time.time()
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 130
    assert time.time() - sent < 2 + 4  # grace + slack
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    (run,) = record.runs.values()
    assert (record.status, run.status, run.outcome) == ("interrupted", "interrupted", "interrupted")
    # fault:hang honours SIGTERM: it wrote its own error.json before the grace ran out
    assert (study_dir / "experiments" / run.run_id / "error.json").is_file()
    assert _containers(client) == []


def test_second_signal_kills_at_once(tmp_path, client, fault_image):
    study = write_study(tmp_path, ["fault:stubborn"])
    proc = _start(study, tmp_path)
    _wait_for_status(tmp_path, "running")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    assert time.time() - sent < 1.7  # well before the 2 s grace would have ended
    (run,) = load_manifest(study_dirs(tmp_path)[0]).runs.values()
    assert run.status == "interrupted" and run.exit_code == 137
    assert _containers(client) == []


def test_signal_during_a_gap_stops_at_once(tmp_path, client, fault_image):
    study = write_study(
        tmp_path, ["fault:ok-1", "fault:ok-2"], execution={"gap_between_experiments_s": 60}
    )
    proc = _start(study, tmp_path)
    _wait_for_status(tmp_path, "completed")
    time.sleep(0.5)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert time.time() - sent < 1.5
    record = load_manifest(study_dirs(tmp_path)[0])
    assert record.status == "interrupted"
    assert sorted(r.status for r in record.runs.values()) == ["completed", "pending"]


def test_kill9_at_random_instants_then_resume_completes_exactly_the_plan(
    tmp_path, client, fault_image
):
    models = [f"fault:ok-{n}" for n in (1, 2, 3, 1, 2, 3)]
    study = write_study(tmp_path, models)
    rng = random.Random(1234)
    for _ in range(20):
        proc = subprocess.Popen(
            [LLEM, "run", str(study), "--resume"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 2.5))
        proc.kill()
        proc.wait()
        (study_dir,) = study_dirs(tmp_path)  # never a second folder
        load_manifest(study_dir)  # always loads
    final = llem("run", str(study), "--resume", cwd=tmp_path, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    plan = StudyPaths(study_dir).read_plan()
    assert sorted(record.runs) == sorted(r.run_id for r in plan)
    assert all(r.status == "completed" for r in record.runs.values())
    assert record.status == "completed"
    lines = (study_dir / "manifest.jsonl").read_text().splitlines()
    assert all(line.endswith("}") for line in lines)
    assert _containers(client) == []
