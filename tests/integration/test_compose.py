"""`docker-compose -f compose/images.yaml` knows every image and builds the CPU one offline."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

from helpers.integration import base_image
from llenergymeasure.imagebuild import cpu_image as image_build
from llenergymeasure.version import __version__

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).parents[2]
COMPOSE_FILE = REPO / "compose" / "images.yaml"
SERVICES = {"pytorch", "vllm", "tensorrt", "cpu", "vllm-cpu"}


def _compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        message = "docker-compose is not installed (Debian: apt-get install docker-compose)"
        if os.environ.get("LLEM_REQUIRE_COMPOSE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """The CPU services' build context (build/wheelhouse), prepared as `llem images build` does:
    compose checks that every build context exists, and a current image skips that step."""
    return image_build.wheelhouse(image_build.source_root(), print)


def test_compose_file_is_valid_on_a_fresh_clone(tmp_path: Path) -> None:
    """Only the tracked files (what a clone has, before any build): `config` passes."""
    tracked = (
        subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        source = REPO / name
        if source.is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tmp_path / name)
    assert not (tmp_path / "build" / "wheelhouse").exists()
    proc = subprocess.run(
        [_compose(), "-f", str(tmp_path / "compose" / "images.yaml"), "config", "--services"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) == SERVICES


def test_compose_file_names_every_image(wheelhouse: Path) -> None:
    proc = subprocess.run(
        [_compose(), "-f", str(COMPOSE_FILE), "config", "--services"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(proc.stdout.split()) == SERVICES


def test_compose_builds_the_cpu_image_offline(
    client: docker.DockerClient, wheelhouse: Path
) -> None:
    compose = _compose()
    env = {
        **os.environ,
        # The engine's own client first: BuildKit needs it (a newer CLI wants buildx).
        "PATH": f"/usr/bin:{os.environ['PATH']}",
        "DOCKER_BUILDKIT": "1",
        "COMPOSE_DOCKER_CLI_BUILD": "1",
        "LLEM_CPU_BASE": base_image(client),
    }
    tag = f"llenergymeasure/cpu:{__version__}"
    try:
        build = subprocess.run(
            [compose, "-f", str(COMPOSE_FILE), "build", "cpu"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        out = client.containers.run(
            tag,
            entrypoint=["python3", "-c", "import llenergymeasure, torch; print(torch.__version__)"],
            network_mode="none",
            remove=True,
        )
        assert out.decode().strip().startswith("2.13.0")
    finally:
        # `llem images build cpu` owns this tag; give it back its image, and leave nothing of
        # compose's build behind.
        built = client.images.get(tag).id if client.images.list(name=tag) else None
        subprocess.run(["docker", "tag", "llenergymeasure/cpu:latest", tag], check=False)
        if built is not None and built != client.images.get(tag).id:
            client.images.remove(built, noprune=False)
