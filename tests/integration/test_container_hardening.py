"""Experiment containers are locked down: inspected live through the engine API while a real
study runs, and a fork loop stopped by the process limit without stopping the study."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers.integration import (
    CPU_IMAGE,
    LLEM,
    TINY_WORKLOAD,
    llem,
    make_tiny_model,
    study_dirs,
    write_study,
)
from llenergymeasure.config.study import DEFAULT_CONTAINER_USER, DEFAULT_PIDS_LIMIT
from llenergymeasure.contract.workdir import CONTAINER_WORKDIR
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET = "hf_llemTestSecret0123456789"


def _live_container(client, proc: subprocess.Popen, deadline_s: float = 120):
    """The study's experiment container once its experiment process has loaded the model."""
    end = time.time() + deadline_s
    while time.time() < end and proc.poll() is None:
        for container in client.containers.list(filters={"label": "llem.run"}):
            workdir = next(
                (
                    m["Source"]
                    for m in container.attrs["Mounts"]
                    if m["Destination"] == CONTAINER_WORKDIR
                ),
                None,
            )
            if workdir and "model_loaded" in _read(Path(workdir) / "progress.jsonl"):
                return container
        time.sleep(0.2)
    pytest.fail(f"no live experiment container within {deadline_s} s (llem exit {proc.poll()})")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def test_a_live_experiment_container_is_locked_down(tmp_path, client):
    make_tiny_model(tmp_path)
    study = write_study(
        tmp_path,
        ["model"],
        image=CPU_IMAGE,
        **TINY_WORKLOAD,
        baseline={"duration_s": 3},  # the container idles here while it is inspected
        min_window_s=1,
        execution={"experiment_timeout_s": 240},
    )
    env = {**os.environ, "HF_TOKEN": SECRET}
    with subprocess.Popen(
        [LLEM, "run", str(study)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        container = _live_container(client, proc)
        attrs = container.attrs
        host = attrs["HostConfig"]
        uid, gid = (int(part) for part in attrs["Config"]["User"].split(":"))
        assert uid != 0
        if os.geteuid() == 0:
            assert attrs["Config"]["User"] == DEFAULT_CONTAINER_USER
        else:
            assert (uid, gid) == (os.geteuid(), os.getegid())
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] is True
        assert host["PidsLimit"] == DEFAULT_PIDS_LIMIT
        assert host["NetworkMode"] == "none"
        assert host["IpcMode"] == "private" and host["Privileged"] is False
        assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {"core": 0}
        writable = sorted(m["Destination"] for m in attrs["Mounts"] if m["RW"])
        assert writable == [CONTAINER_WORKDIR]  # offline: the HF cache (if any) is read-only
        assert set(host["Tmpfs"]) == {"/tmp"}
        # From inside: the process's real and effective ids, no capabilities, nothing writable
        # but the work folder and /tmp.
        code, out = container.exec_run(["sh", "-c", "id -u; grep CapEff /proc/self/status"])
        assert code == 0 and out.decode().split()[0] == str(uid)
        assert out.decode().split()[-1] == "0000000000000000"
        for path in ("/usr/x", "/llem/x", "/etc/x"):
            code, _ = container.exec_run(["touch", path])
            assert code != 0, f"{path} is writable"
        assert container.exec_run(["touch", f"{CONTAINER_WORKDIR}/.probe"])[0] == 0
        # An experiment gets no secret (it has no network to use one on), and nothing is on disk.
        assert not any(SECRET in variable for variable in attrs["Config"]["Env"])
        assert host["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-file": "2", "max-size": "256m"},
        }
        stdout, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout[-3000:]
    assert SECRET not in stdout
    (study_dir,) = study_dirs(tmp_path)
    files = [p for p in study_dir.rglob("*") if p.is_file()]
    assert any(p.name == "container.log" for p in files) and any(
        p.name == "result.json" for p in files
    )
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), f"the secret is in {path}"
    # Written by the container user, still the invoker's to read and remove.
    (run,) = load_manifest(study_dir).runs.values()
    result = study_dir / run.result_path
    assert result.stat().st_uid == uid
    result.read_text()
    assert os.access(result.parent, os.W_OK)


def test_a_fork_loop_is_stopped_by_the_process_limit_and_the_study_goes_on(
    tmp_path, client, fault_image
):
    study = write_study(tmp_path, ["fault:forkbomb", "fault:ok-3"], execution={"pids_limit": 64})
    proc = llem("run", str(study), cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    bomb, ok = sorted(load_manifest(study_dir).runs.values(), key=lambda r: r.run_index)
    assert ok.status == "completed"
    assert bomb.outcome == "crashed" and bomb.exit_code == 4, bomb
    assert bomb.error_type == "ProcessLimit"
    assert "execution.pids_limit = 64" in bomb.error
    assert "fork refused after" in (bomb.log_tail or "")
    assert not client.containers.list(all=True, filters={"label": "llem.run"})
