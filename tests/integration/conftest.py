"""Fixtures for tests against a real Docker engine: the fault image, study files, `llem` runs.

The engine must be running (scripts/test starts one). Without one these tests skip, unless
LLEM_REQUIRE_DOCKER=1 (set by scripts/test and CI), where they fail.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import docker
import docker.errors
import pytest

from helpers.factories import run_context
from helpers.integration import FAULT_IMAGE, VLLM_CPU_IMAGE, base_image
from helpers.results import Figures, make_result
from helpers.second_engine import SecondEngine
from llenergymeasure.contract.config import ExperimentConfig


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


def _template_result() -> str:
    config = ExperimentConfig(model="template", gpu_count=0)
    context = run_context(study_id="t", study_name="t")
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


@pytest.fixture
def second_engine(client: docker.DockerClient, fault_image: str) -> Iterator[SecondEngine]:
    """A dockerd of the test's own with the fault image loaded, to stop and start under a
    running `llem` (needs dockerd, unshare and root)."""
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
