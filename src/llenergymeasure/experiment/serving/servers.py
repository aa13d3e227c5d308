"""A backend's own OpenAI-compatible server, started in the container on loopback.

The command line is the backend adapter's (`BackendAdapter.server_command`: the same engine
arguments as offline mode); this module runs it: its log kept in the work folder
(`server.log`), readiness awaited with a timeout, its death noticed at once.

Ready means a real request worked: /health answering 200 is not enough (a server can answer it
before its first completion does), so a one-token completion of the first prompt must come
back too. That probe belongs to the load phase: no window, baseline or latency figure holds it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import EngineArguments, ServerCommand, ServerRequest
from llenergymeasure.backends.registry import get_backend
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.workdir import WorkPaths

SERVED_MODEL = "llem-model"
POLL_S = 0.25
PROBE_TIMEOUT_S = 60.0  # a first completion may compile kernels or capture graphs
PROBE_REPLY_CAP = 1 << 20
LOG_TAIL_BYTES = 3000


class ServerFailed(Exception):
    """The server did not become ready, or died: the message carries its log's tail."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One server process: `start`, `wait_ready`, `alive`, `stop`."""

    def __init__(self, config: ExperimentConfig, workdir: Path, *, offline: bool) -> None:
        self.config, self.workdir, self.offline = config, workdir, offline
        self.name = config.backend
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.command: ServerCommand | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def arguments(self) -> EngineArguments:
        """What its command line passes (for the result's record); after `start`."""
        return dict(self.command.arguments) if self.command is not None else {}

    @property
    def description(self) -> str:
        argv = self.command.argv if self.command is not None else []
        return f"{self.name}: {' '.join(argv)}"

    def start(self, longest_prompt_tokens: int) -> None:
        request = ServerRequest(
            self.config, self.offline, longest_prompt_tokens, self.port, SERVED_MODEL
        )
        self.command = get_backend(self.config.backend).server_command(request)
        for name, text in self.command.files.items():
            (self.workdir / name).write_text(text, encoding="utf-8")
        log = open(self.workdir / WorkPaths.SERVER_LOG, "ab")  # noqa: SIM115 - the process holds it
        self.process = subprocess.Popen(
            self.command.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,  # where its option files are
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout_s: float, probe: tuple[str, dict[str, Any]]) -> float:
        """Seconds until /health answered 200 and then `probe` (an endpoint path and a
        one-token request body) came back with a choice; ServerFailed on death or timeout."""
        start = time.perf_counter()
        healthy = False
        while True:
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise ServerFailed(
                    f"the {self.name} server exited with code {code} before it was ready; "
                    f"its log ends:\n{self.log_tail()}"
                )
            healthy = healthy or self._answers_health()
            left = timeout_s - (time.perf_counter() - start)
            if healthy and self._completes(probe, min(PROBE_TIMEOUT_S, max(left, 1.0))):
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout_s:
                stage = "answered /health but no completion" if healthy else "never answered"
                raise ServerFailed(
                    f"the {self.name} server was not ready within serving.readiness_timeout_s "
                    f"({timeout_s:g} s): it {stage}; its log ends:\n{self.log_tail()}"
                )
            time.sleep(POLL_S)

    def _answers_health(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _completes(self, probe: tuple[str, dict[str, Any]], timeout_s: float) -> bool:
        """The probe request comes back with a choice."""
        path, body = probe
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                reply = json.loads(answer.read(PROBE_REPLY_CAP))
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return isinstance(reply, dict) and bool(reply.get("choices"))

    def log_tail(self) -> str:
        try:
            data = (self.workdir / WorkPaths.SERVER_LOG).read_bytes()[-LOG_TAIL_BYTES:]
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
