"""The backends' own OpenAI-compatible servers, started in the container on loopback.

Each server is a command line made from the experiment's config (the same engine arguments as
offline mode), its log kept in the work folder (`server.log`), readiness awaited on /health
with a timeout, its death noticed at once. vLLM: `vllm.entrypoints.openai.api_server` (what
`vllm serve` runs); TensorRT-LLM: `trtllm-serve` (written for GPU hosts; not run where no GPU
was lent).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import BackendUnavailable
from llenergymeasure.backends.tensorrt_args import llm_kwargs as trt_llm_kwargs
from llenergymeasure.backends.vllm import (
    available_memory_bytes,
    kv_shape,
    require_cpu_compiler,
)
from llenergymeasure.backends.vllm_args import cpu_kv_cache_bytes, engine_kwargs, max_model_len
from llenergymeasure.contract.config import ExperimentConfig

SERVER_LOG = "server.log"
SERVED_MODEL = "llem-model"
POLL_S = 0.25
LOG_TAIL_BYTES = 3000


class ServerFailed(Exception):
    """The server did not become ready, or died: the message carries its log's tail."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_flags(kwargs: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    """Engine keyword arguments as argparse flags: `x_y=v` -> `--x-y v`; booleans as
    `--x-y` / `--no-x-y` (argparse's BooleanOptionalAction, which vLLM's engine args use)."""
    flags: list[str] = []
    for key, value in kwargs.items():
        if key in skip or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


class Server(ABC):
    """One server process: `start`, `wait_ready`, `alive`, `stop`."""

    name: str

    def __init__(self, config: ExperimentConfig, workdir: Path, *, offline: bool) -> None:
        self.config, self.workdir, self.offline = config, workdir, offline
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.arguments: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @abstractmethod
    def command(self, longest_prompt_tokens: int) -> list[str]:
        """The command line (and `self.arguments`, for the result's record)."""

    @property
    def description(self) -> str:
        return f"{self.name}: {' '.join(self.command_line)}"

    def start(self, longest_prompt_tokens: int) -> None:
        self.command_line = self.command(longest_prompt_tokens)
        log = open(self.workdir / SERVER_LOG, "ab")  # noqa: SIM115 - the process holds it
        self.process = subprocess.Popen(
            self.command_line, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds until /health answered 200; ServerFailed on death or timeout."""
        start = time.perf_counter()
        while True:
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise ServerFailed(
                    f"the {self.name} server exited with code {code} before it was ready; "
                    f"its log ends:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() - start > timeout_s:
                raise ServerFailed(
                    f"the {self.name} server was not ready within serving.readiness_timeout_s "
                    f"({timeout_s:g} s); its log ends:\n{self.log_tail()}"
                )
            time.sleep(POLL_S)

    def log_tail(self) -> str:
        try:
            data = (self.workdir / SERVER_LOG).read_bytes()[-LOG_TAIL_BYTES:]
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


class VLLMServer(Server):
    name = "vllm"

    def command(self, longest_prompt_tokens: int) -> list[str]:
        config = self.config
        model_len = max_model_len(config, longest_prompt_tokens)
        cpu_kv_bytes = None
        if config.gpu_count == 0:
            require_cpu_compiler(config)
            shape = kv_shape(config, offline=self.offline)
            cpu_kv_bytes = cpu_kv_cache_bytes(config, shape, available_memory_bytes(), model_len)
        kwargs = engine_kwargs(
            config,
            config.model,
            offline=self.offline,
            model_len=model_len,
            cpu_kv_bytes=cpu_kv_bytes,
        )
        self.arguments = dict(kwargs)
        flags = cli_flags(kwargs, skip=("model",))
        return [
            sys.executable,
            *("-m", "vllm.entrypoints.openai.api_server"),
            *("--model", config.model, "--served-model-name", SERVED_MODEL),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            "--disable-uvicorn-access-log",
            *flags,
        ]


class TrtllmServer(Server):
    """`trtllm-serve MODEL`: TensorRT-LLM's OpenAI-compatible server (GPU only)."""

    name = "tensorrt"

    def command(self, longest_prompt_tokens: int) -> list[str]:
        executable = shutil.which("trtllm-serve")
        if executable is None:
            raise BackendUnavailable("trtllm-serve is not in this image: use the tensorrt image")
        kwargs = trt_llm_kwargs(self.config, self.config.model, offline=self.offline)
        self.arguments = dict(kwargs)
        section = self.config.tensorrt
        assert section is not None
        return [
            executable,
            self.config.model,
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--backend", "pytorch" if section.engine == "pytorch" else "trt"),
            *("--tp_size", str(section.tp_size), "--pp_size", str(section.pp_size)),
            *("--max_batch_size", str(section.max_batch_size)),
            *("--max_seq_len", str(longest_prompt_tokens + self.config.max_new_tokens)),
        ]
