"""Fixtures for tests against a real Docker engine: the fault image, study files, `llem` runs.

The engine must be running (scripts/test starts one). Without one these tests skip, unless
LLEM_REQUIRE_DOCKER=1 (set by scripts/test and CI), where they fail.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from results_fixtures import Figures, make_result

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.run import RunContext

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


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    try:
        engine = docker.from_env()
        engine.ping()
    except docker.errors.DockerException as error:
        if os.environ.get("LLEM_REQUIRE_DOCKER") == "1":
            pytest.fail(f"Docker engine required but not reachable: {error}")
        pytest.skip(f"no Docker engine: {error}")
    return engine


@pytest.fixture(scope="session", autouse=True)
def leaves_nothing_behind() -> Iterator[None]:
    """The suite leaves no container and no dangling image of its own on the engine."""
    try:
        engine = docker.from_env()
        engine.ping()
    except docker.errors.DockerException:
        yield  # no engine: the docker tests skip or fail on their own
        return
    containers = {c.id for c in engine.containers.list(all=True)}
    started = time.time()
    yield
    left = [c.name for c in engine.containers.list(all=True) if c.id not in containers]
    # Images made during the session and left untagged (an image replaced by a rebuild of its
    # tag before the session, on a machine used before, is not the suite's doing).
    new = [
        i.id for i in engine.images.list(filters={"dangling": True}) if _created(i) >= started - 1
    ]
    assert not left, f"containers left behind by the tests: {left}"
    assert not new, f"dangling images left behind by the tests: {new}"


def _created(image: docker.models.images.Image) -> float:
    """The image's creation time, s since the epoch."""
    stamp = image.attrs["Created"]  # RFC 3339 with nanoseconds
    return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()


def base_image(client: docker.DockerClient) -> str:
    """A python3 base without a registry: the slim image if present, else the offline base."""
    for image in client.images.list():
        for tag in image.tags:
            if tag == "python:3.11-slim" or tag.startswith("llenergymeasure/base-offline:"):
                return tag
    pytest.fail("no python3 base image: run `llem images build cpu` first")


def _template_result() -> str:
    config = ExperimentConfig(model="template", gpu_count=0)
    context = RunContext(
        study_id="t",
        study_name="t",
        run_id="0000_00000000_c0",
        run_index=0,
        config_hash="0" * 64,
        cycle=0,
    )
    return make_result(context, config, Figures(tokens_per_s=100.0)).model_dump_json()


@pytest.fixture(scope="session")
def fault_image(client: docker.DockerClient) -> str:
    dockerfile = (
        f"FROM {base_image(client)}\n"
        "COPY fault.py result-template.json /fault/\n"
        'ENTRYPOINT ["python3", "/fault/fault.py"]\n'
    )
    files = {
        "Dockerfile": dockerfile.encode(),
        "fault.py": (Path(__file__).parent / "fault_image" / "fault.py").read_bytes(),
        "result-template.json": _template_result().encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    client.images.build(fileobj=buffer, custom_context=True, tag=FAULT_IMAGE, rm=True)
    return FAULT_IMAGE


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
    """The random-weight tiny model (`runner_entry.tiny_model`), made inside the CPU image as
    this process's user, at `folder`/model; `options` go to its command line."""
    subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "-e", "HOME=/tmp"),
            *("-u", f"{os.getuid()}:{os.getgid()}", "-v", f"{folder}:/out"),
            *("--entrypoint", "python3", CPU_IMAGE),
            *("-m", "llenergymeasure.runner_entry.tiny_model", "/out/model", *options),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "model"


@pytest.fixture
def vllm_cpu_image(client) -> str:
    if not client.images.list(name="llenergymeasure/cpu"):
        pytest.fail("llenergymeasure/cpu is missing: run `llem images build cpu`")
    if not client.images.list(name="llenergymeasure/vllm-cpu"):
        reason = "llenergymeasure/vllm-cpu is absent: run `llem images build vllm-cpu`"
        if os.environ.get("LLEM_REQUIRE_VLLM_CPU") == "1":
            pytest.fail(reason)
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return VLLM_CPU_IMAGE


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
