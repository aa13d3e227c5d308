"""A backend's server records exactly the engine arguments its command line passes: the
command is parsed back (flags, and the option file it points at) and compared with the record."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from llenergymeasure.backends.base import ServerRequest, flat
from llenergymeasure.backends.registry import get_backend
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.experiment.serving.servers import Server, ServerFailed


def _parsed(argv: list[str], files: dict[str, str]) -> dict[str, object]:
    """`--key value` / `--flag` / `--no-flag` back into keyword arguments; an option file's
    content under its flag's name."""
    parsed: dict[str, object] = {}
    k = 0
    while k < len(argv):
        token = argv[k]
        k += 1
        if not token.startswith("--"):
            continue
        key = token[2:].replace("-", "_")
        if k < len(argv) and not argv[k].startswith("--"):
            value: object = argv[k]
            k += 1
            if str(value) in files:
                value = json.loads(files[str(value)])
        elif key.startswith("no_"):
            key, value = key[3:], False
        else:
            value = True
        parsed[key] = value
    return parsed


def _comparable(arguments: dict[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in flat(arguments).items() if value is not None}


def _request(config: ExperimentConfig) -> ServerRequest:
    return ServerRequest(
        config, offline=True, longest_prompt_tokens=100, port=8123, served_model="s"
    )


def test_vllm_records_what_its_command_passes():
    config = ExperimentConfig(
        model="org/m",
        backend="vllm",
        vllm={"max_num_seqs": 16, "enforce_eager": True, "enable_prefix_caching": False},
    )
    command = get_backend("vllm").server_command(_request(config))
    parsed = _parsed(command.argv, command.files)
    for not_engine in ("served_model_name", "host", "port", "disable_uvicorn_access_log"):
        parsed.pop(not_engine)
    assert _comparable(parsed) == _comparable(dict(command.arguments))
    assert command.arguments["max_num_seqs"] == 16 and command.arguments["enforce_eager"] is True
    assert command.arguments["max_model_len"] == 100 + config.max_new_tokens


@pytest.fixture
def trtllm_serve_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An executable named trtllm-serve on PATH: the command is built, never run."""
    program = tmp_path / "bin" / "trtllm-serve"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 1\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{program.parent}{os.pathsep}{os.environ['PATH']}")


def test_tensorrt_records_what_its_command_and_option_file_pass(trtllm_serve_on_path):
    config = ExperimentConfig(
        model="org/m",
        backend="tensorrt",
        precision="fp16",
        tensorrt={"max_batch_size": 4, "kv_cache_free_gpu_memory_fraction": 0.5},
    )
    command = get_backend("tensorrt").server_command(_request(config))
    parsed = _parsed(command.argv, command.files)
    for not_engine in ("served_model_name", "host", "port"):
        parsed.pop(not_engine)
    parsed["model"] = command.argv[1]  # trtllm-serve takes the model as its argument
    assert _comparable(parsed) == _comparable(dict(command.arguments))
    # what offline mode gives the engine, the server gets too: no KV-cache block reuse
    options = parsed["extra_llm_api_options"]
    assert isinstance(options, dict)
    assert options["kv_cache_config"] == {
        "free_gpu_memory_fraction": 0.5,
        "enable_block_reuse": False,
    }
    assert options["dtype"] == "float16" and parsed["max_batch_size"] == "4"


# A stand-in for a backend's server, in its own process: /health answers 200 from the start,
# /v1/completions answers 503 the first `FAILS` times (a server not yet able to complete), then
# one choice; every completion request is counted in a file.
_STAND_IN = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, fails, counter = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(counter, "a") as out: out.write(json.dumps(body) + "\\n")
        seen = sum(1 for _ in open(counter))
        if seen <= fails:
            self.send_response(503); self.end_headers(); return
        reply = json.dumps({"choices": [{"text": "x"}]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(reply)))
        self.end_headers(); self.wfile.write(reply)
HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _stand_in(tmp_path: Path, fails: int) -> Server:
    import subprocess
    import sys

    server = Server(ExperimentConfig(model="m", backend="vllm"), tmp_path, offline=True)
    server.process = subprocess.Popen(
        [sys.executable, "-c", _STAND_IN, str(server.port), str(fails), str(tmp_path / "calls")]
    )
    return server


def test_ready_means_a_completion_came_back_not_only_health(tmp_path: Path) -> None:
    server = _stand_in(tmp_path, fails=3)
    try:
        probe = ("/v1/completions", {"prompt": [5, 6, 7], "max_tokens": 1})
        assert server.wait_ready(30, probe) >= 0
    finally:
        server.stop()
    calls = [json.loads(line) for line in (tmp_path / "calls").read_text().splitlines()]
    assert len(calls) == 4  # three refused, the fourth completed
    assert calls[-1]["prompt"] == [5, 6, 7] and calls[-1]["max_tokens"] == 1


def test_a_server_that_answers_health_but_never_completes_is_not_ready(tmp_path: Path) -> None:
    server = _stand_in(tmp_path, fails=10_000)
    try:
        with pytest.raises(ServerFailed) as failed:
            server.wait_ready(2, ("/v1/completions", {"prompt": [1], "max_tokens": 1}))
    finally:
        server.stop()
    assert "answered /health but no completion" in str(failed.value)
