"""Helpers of the tests against a real Docker engine: study files, `llem` runs, the tiny model
made in the CPU image, and the images the tests use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest
from ruamel.yaml import YAML

FAULT_IMAGE = "llem-test/fault:latest"
# A few prompts of a few tokens: a real run on the CPU image in seconds (figures meaningless).
TINY_WORKLOAD: dict[str, Any] = {
    "n_prompts": 2,
    "max_input_tokens": 32,
    "max_new_tokens": 4,
    "prompts": {"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 8}},
    "warmup": {"min_batches": 1, "max_batches": 1},
}
CPU_IMAGE = "llenergymeasure/cpu:latest"
VLLM_CPU_IMAGE = "llenergymeasure/vllm-cpu:latest"
LLEM = str(Path(sys.executable).parent / "llem")


def write_study(
    folder: Path,
    models: list[str],
    image: str = FAULT_IMAGE,
    name: str = "t",
    execution: dict[str, Any] | None = None,
    **top: Any,
) -> Path:
    study: dict[str, Any] = {
        "name": name,
        "output_dir": "out",
        "offline": True,
        "images": {"pytorch": image},
        "gpu_count": 0,
        "precision": "fp32",
        "execution": {
            "gap_between_experiments_s": 0,
            "gap_between_cycles_s": 0,
            "experiment_timeout_s": 60,
            "stall_timeout_s": 60,
            **(execution or {}),
        },
        **top,
    }
    if len(models) == 1:
        study["model"] = models[0]
    else:
        study["experiments"] = [{"model": model} for model in models]
    path = folder / "study.yaml"
    with open(path, "w") as handle:
        YAML().dump(study, handle)
    return path


def llem(*args: str, cwd: Path, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LLEM, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def study_dirs(folder: Path) -> list[Path]:
    out = folder / "out"
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def make_tiny_model(folder: Path, *options: str) -> Path:
    """The random-weight tiny model (`experiment.tiny_model`), made inside the CPU image as
    this process's user, at `folder`/model; `options` go to its command line."""
    subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "-e", "HOME=/tmp"),
            *("-u", f"{os.getuid()}:{os.getgid()}", "-v", f"{folder}:/out"),
            *("--entrypoint", "python3", CPU_IMAGE),
            *("-m", "llenergymeasure.experiment.tiny_model", "/out/model", *options),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "model"


def tiny_cpu_study(
    folder: Path, client: docker.DockerClient, batch_sizes: list[int], **execution: Any
) -> Path:
    """A study of the real CPU image on the tiny model, one run per batch size (per cycle)."""
    if not client.images.list(name="llenergymeasure/cpu"):
        pytest.fail("llenergymeasure/cpu is missing: run `llem images build cpu`")
    make_tiny_model(folder)
    return write_study(
        folder,
        ["model"],
        image=CPU_IMAGE,
        **TINY_WORKLOAD,
        baseline={"enabled": False},
        min_window_s=0.1,
        sweep={"pytorch.batch_size": batch_sizes},
        execution={"experiment_timeout_s": 240, **execution},
    )


def vllm_cpu_serving_study(folder: Path, **top: Any) -> Path:
    """A serving study of the vllm-cpu image on a small tiny model: 8 new tokens, a 1 s
    baseline, eager mode; `top` adds or replaces top-level keys (prompts, serving, sweep...)."""
    make_tiny_model(folder, "--hidden", "128", "--heads", "2", "--context", "512")
    fields: dict[str, Any] = {
        "images": {"vllm": VLLM_CPU_IMAGE},
        "backend": "vllm",
        "mode": "serving",
        "max_new_tokens": 8,
        "baseline": {"duration_s": 1},
        "vllm": {"enforce_eager": True},
        "execution": {"experiment_timeout_s": 600, "stall_timeout_s": 300},
        **top,
    }
    return write_study(folder, ["model"], **fields)


def base_image(client: docker.DockerClient) -> str:
    """A python3 base without a registry: the slim image if present, else the offline base."""
    for image in client.images.list():
        for tag in image.tags:
            if tag == "python:3.11-slim" or tag.startswith("llenergymeasure/base-offline:"):
                return tag
    pytest.fail("no python3 base image: run `llem images build cpu` first")


def run_and_kill_server(
    study: Path, folder: Path, client: docker.DockerClient, marker: str
) -> subprocess.CompletedProcess:
    """`llem run` of a serving study; once its progress shows `marker`, SIGKILL the server
    inside its container (by host pids: the image has no pkill). Returns the finished run."""
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 600
    container = None
    while time.time() < deadline and container is None:
        dirs = study_dirs(folder)
        progress = list(dirs[0].glob("experiments/*/progress.jsonl")) if dirs else []
        if progress and marker in progress[0].read_text():
            (container,) = client.containers.list(filters={"label": "llem.run"})
        time.sleep(0.5)
    assert container is not None, f"the progress never showed {marker}"
    top = container.top(ps_args="-eo pid,args")
    pids = [int(row[0]) for row in top["Processes"] if "vllm.entrypoints.openai" in row[1]]
    assert pids, top
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), "")
