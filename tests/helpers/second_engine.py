"""A second dockerd of a test's own (own socket, data-root, exec-root and pidfile, no bridge, no
iptables, its own network namespace), to stop and start under a running `llem`: the engine every
other test uses is never touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import docker.errors

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
