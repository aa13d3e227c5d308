"""The Docker daemon stopped mid-study: one clear message (exit 2), the manifest keeps what
completed, and once the daemon is back `llem run --resume` finishes exactly the planned set.

The daemon stopped is a second dockerd of this test's own (own socket, data-root, exec-root and
pidfile, no bridge, no iptables), so the engine every other test uses is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from helpers.integration import LLEM, llem, study_dirs, write_study
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest
from llenergymeasure.study.manifest_models import StudyRecord

pytestmark = pytest.mark.docker

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


class SecondEngine:
    """A dockerd started and stopped by this test; everything it owns lives under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"unix://{root / 'docker.sock'}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> docker.DockerClient:
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - the daemon keeps it
        self.proc = subprocess.Popen(
            [
                # Its own network namespace: with `--bridge none` dockerd deletes the host's
                # docker0 at start, which would cut the main engine's bridge network.
                "unshare",
                "--net",
                "dockerd",
                "--host",
                self.url,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl+C meant for pytest must not reach it
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client = docker.DockerClient(base_url=self.url, timeout=60)
                client.ping()
                return client
            except docker.errors.DockerException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "the second dockerd did not start:\n" + self.log_tail()
                    ) from None
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, as `systemctl stop docker` sends; SIGKILL only if it does not stop."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._kill_own_containerd()

    def _kill_own_containerd(self) -> None:
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        if pidfile.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)

    def log_tail(self) -> str:
        path = self.root / "dockerd.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-20:]) if path.is_file() else ""
        )

    def remove(self) -> None:
        self.stop()
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(self.root))
        ]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.root)


@pytest.fixture
def second_engine(client: docker.DockerClient, fault_image: str) -> Iterator[SecondEngine]:
    if shutil.which("dockerd") is None or shutil.which("unshare") is None or os.geteuid() != 0:
        if os.environ.get("LLEM_REQUIRE_DOCKER") == "1":
            pytest.fail("a second dockerd needs dockerd, unshare and root")
        pytest.skip("a second dockerd needs dockerd, unshare and root")
    # /tmp directly: a unix socket path must stay under 108 bytes.
    engine = SecondEngine(Path(tempfile.mkdtemp(prefix="llem-d2-", dir="/tmp")))
    try:
        second = engine.start()
        second.images.load(b"".join(client.images.get(fault_image).save(named=True)))
        yield engine
    finally:
        engine.remove()


def _wait_for(study_dir_parent: Path, predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dirs = study_dirs(study_dir_parent)
        if dirs and (dirs[0] / "manifest.jsonl").is_file():
            try:
                if predicate(load_manifest(dirs[0])):
                    return
            except ValueError:
                pass
        time.sleep(0.05)
    raise AssertionError("the study never reached the expected state")


def _run_and_stop_engine(
    study: Path, engine: SecondEngine, ready: Callable[[StudyRecord], bool], settle_s: float = 0
) -> tuple[subprocess.Popen, str, str]:
    """`llem run` on the second engine, stopped `settle_s` after the manifest says `ready`."""
    env = {**os.environ, "DOCKER_HOST": engine.url}
    proc = subprocess.Popen(
        [LLEM, "run", str(study)],
        cwd=study.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(study.parent, ready)
        time.sleep(settle_s)
        engine.stop()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, out, err


def test_daemon_stopped_mid_study_fails_clearly_then_resumes(tmp_path, second_engine):
    models = ["fault:ok-30", "fault:ok-31", "fault:ok-32", "fault:ok-33"]
    study = write_study(tmp_path, models)
    env = {**os.environ, "DOCKER_HOST": second_engine.url}
    proc, out, err = _run_and_stop_engine(
        study,
        second_engine,
        lambda record: (
            sorted(r.status for r in record.runs.values())[:2] == ["completed", "pending"]
            and any(r.status == "running" for r in record.runs.values())
        ),
    )
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err
    assert err.count("error:") == 1 and "Docker engine stopped answering" in err, err
    assert "--resume" in err

    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    runs = sorted(record.runs.values(), key=lambda r: r.run_index)
    assert record.status == "failed"
    assert [r.status for r in runs] == ["completed", "interrupted", "pending", "pending"]
    assert (runs[1].outcome, runs[1].error_type) == ("interrupted", "EngineGone")
    kept = study_dir / runs[0].result_path
    assert kept.is_file()

    second = second_engine.start()
    final = llem("run", str(study), "--resume", cwd=tmp_path, env=env, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    assert study_dirs(tmp_path) == [study_dir]
    record = load_manifest(study_dir)
    runs = sorted(record.runs.values(), key=lambda r: r.run_index)
    assert sorted(record.runs) == sorted(run.run_id for run in StudyPaths(study_dir).read_plan())
    assert record.status == "completed"
    assert [r.status for r in runs] == ["completed"] * 4
    assert [r.attempts for r in runs] == [1, 2, 1, 1]  # the completed run was not repeated
    assert kept.is_file()
    # the container the dead daemon left behind was found by label and removed
    assert second.containers.list(all=True, filters={"label": "llem.owner_pid"}) == []


def test_daemon_stopped_with_two_runs_in_flight_interrupts_both(tmp_path, second_engine):
    models = ["fault:ok-90", "fault:ok-91", "fault:ok-92"]  # long: they outlast the stop
    study = write_study(tmp_path, models, execution={"max_parallel": 2, "cpu_ids": [0, 1]})
    proc, out, err = _run_and_stop_engine(
        study,
        second_engine,
        lambda record: sum(r.status == "running" for r in record.runs.values()) == 2,
        settle_s=0.5,
    )
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err
    assert err.count("error:") == 1 and "Docker engine stopped answering" in err, err
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    runs = sorted(record.runs.values(), key=lambda r: r.run_index)
    assert record.status == "failed"
    # Both were in flight; a run the engine let finish while it shut down is kept, every other
    # one is interrupted (it runs again on --resume), none is failed, none is lost.
    assert runs[2].status == "pending"
    assert {r.status for r in runs[:2]} <= {"interrupted", "completed"}
    gone = [r for r in runs[:2] if r.status == "interrupted"]
    assert gone and all(r.error_type == "EngineGone" for r in gone)
