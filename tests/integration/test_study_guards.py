"""The study folder's guards with real llem processes and containers: the writer lock taken
before the manifest is touched, a failing study loop that stops its containers before llem
exits, the host's CPU locks between two CPU studies, run ids that stay inside the study."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import docker
import pytest

from helpers.integration import LLEM, llem, study_dirs, write_study
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker


def _start(study: Path, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [LLEM, "run", str(study), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_running(tmp_path: Path, count: int = 1, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dirs = study_dirs(tmp_path)
        if dirs and (dirs[0] / "manifest.jsonl").is_file():
            with open(dirs[0] / "manifest.jsonl") as handle:
                if handle.read().count('"status":"running"') >= count + 1:  # study + runs
                    return dirs[0]
        time.sleep(0.1)
    pytest.fail("the study never had its runs running")


def _llem_containers(client: docker.DockerClient, study_dir: Path) -> list:
    return client.containers.list(all=True, filters={"label": f"llem.study={study_dir.name}"})


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_resume_takes_the_writer_lock_before_it_touches_the_manifest(tmp_path, client, fault_image):
    hang = {"experiment_timeout_s": 120}
    # The same study (name, design) on another CPU, so its CPU lock does not refuse it first.
    other = write_study(tmp_path, ["fault:hang"], execution={**hang, "cpu_ids": [1]})
    other = other.rename(tmp_path / "other-cpus.yaml")
    study = write_study(tmp_path, ["fault:hang"], execution={**hang, "cpu_ids": [0]})
    first = _start(study, cwd=tmp_path)
    try:
        study_dir = _wait_running(tmp_path)
        manifest = study_dir / "manifest.jsonl"
        # The first llem in the middle of a line: a torn end that only its writer may repair.
        torn = b'{"kind":"run","run_id":"0000_'
        with open(manifest, "ab") as handle:
            handle.write(torn)
        before = manifest.read_bytes()
        second = llem("run", str(other), "--resume", cwd=tmp_path, timeout=60)
        assert second.returncode == 2, second.stderr
        assert "another llem" in second.stderr and "is running or following" in second.stderr
        assert manifest.read_bytes() == before  # not a byte changed, the torn end kept
        with open(manifest, "r+b") as handle:  # the writer's line would have ended it
            handle.truncate(len(before) - len(torn))
    finally:
        _stop(first)
    assert first.returncode == 130
    (run,) = load_manifest(study_dir).runs.values()
    assert run.status == "interrupted"


def test_a_second_cpu_study_on_the_same_cpus_is_refused(tmp_path, client, fault_image):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    study_a = write_study(tmp_path / "a", ["fault:hang"], execution={"experiment_timeout_s": 120})
    study_b = write_study(tmp_path / "b", ["fault:ok-1"], name="other")
    first = _start(study_a, cwd=tmp_path / "a")
    try:
        _wait_running(tmp_path / "a")
        second = llem("run", str(study_b), cwd=tmp_path / "b", timeout=60)
        assert second.returncode == 2, second.stderr
        assert "CPU 0 is in use by another llem run: study t (pid" in second.stderr
        assert study_dirs(tmp_path / "b") == []  # refused before anything was written
    finally:
        _stop(first)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_stops_every_container_in_flight_before_llem_exits(
    tmp_path, client, fault_image
):
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(out)], check=True)
    proc = None
    try:
        study = write_study(
            tmp_path,
            ["fault:ok-30", "fault:hang"],
            execution={"max_parallel": 2, "cpu_ids": [0, 1], "experiment_timeout_s": 600},
        )
        proc = _start(study, cwd=tmp_path)
        study_dir = _wait_running(tmp_path, count=2)
        with open(out / "filler", "wb") as handle:  # fill the disk under the manifest
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2, stderr
        assert "No space left on device" in stderr and "--resume" in stderr
        assert _llem_containers(client, study_dir) == []  # the hanging one too: not left behind
        # What the manifest still took is whole; the rest is resumable.
        assert load_manifest(study_dir).study_id == study_dir.name
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        for container in client.containers.list(all=True, filters={"label": "llem.study"}):
            container.remove(force=True)
        subprocess.run(["umount", str(out)], check=False)


def test_a_run_id_that_leaves_the_study_folder_is_refused(tmp_path, client, fault_image):
    study = write_study(tmp_path, ["fault:ok-1"])
    proc = llem("run", str(study), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (study_dir,) = study_dirs(tmp_path)
    outside = tmp_path / "keep-me"
    outside.mkdir()
    (outside / "data").write_text("mine")
    plan = json.loads((study_dir / "plan.json").read_text())
    plan[0]["run_id"] = "../../../keep-me"  # experiments/../../../keep-me is `outside`
    (study_dir / "plan.json").write_text(json.dumps(plan))
    resumed = llem("run", str(study), "--resume", cwd=tmp_path)
    assert resumed.returncode == 2, resumed.stderr
    assert "plan.json" in resumed.stderr and "run_id" in resumed.stderr
    assert (outside / "data").read_text() == "mine"
