"""A CPU study end to end on podman, through its Docker-compatible API socket
(`execution.container_engine: podman`): the same SDK code, the real CPU image loaded into
podman's store from Docker's (`docker save | podman load`), the real experiment process, the
tiny model."""

from __future__ import annotations

import os
import subprocess

import docker
import docker.errors
import pytest

from helpers.integration import CPU_IMAGE, llem, study_dirs, tiny_cpu_study, write_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.orchestrator.machine.engine import ENGINES
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.podman, pytest.mark.slow]


@pytest.fixture(scope="module")
def podman() -> docker.DockerClient:
    url = ENGINES["podman"].base_url()
    try:
        engine = docker.DockerClient(base_url=url, timeout=300)
        engine.ping()
    except (docker.errors.DockerException, OSError) as error:
        if os.environ.get("LLEM_REQUIRE_PODMAN") == "1":
            pytest.fail(f"podman's API socket required but not answering at {url}: {error}")
        pytest.skip(f"no podman API socket at {url}: {error}")
    return engine


def _load_into_podman(podman: docker.DockerClient, client: docker.DockerClient, ref: str) -> None:
    """The Docker image, by the same ID, in podman's store (skipped when it is there). Earlier
    llem builds go first: each rebuild has a new ID, and podman's store would otherwise grow by a
    whole image per source change until the disk fills."""
    image_id = client.images.get(ref).id
    stale = podman.images.list(filters={"label": "llem.inputs"})
    if any(image.id == image_id for image in stale):
        return
    for image in stale:
        podman.images.remove(image.id, force=True)
    save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
    load = subprocess.run(["podman", "load", "-q"], stdin=save.stdout, capture_output=True)
    assert save.wait() == 0
    assert load.returncode == 0, f"podman load failed: {load.stderr.decode(errors='replace')}"
    assert podman.images.get(ref).id == image_id


def test_a_cpu_study_runs_on_podman(tmp_path, client, podman):
    study = tiny_cpu_study(tmp_path, client, [1, 2], container_engine="podman")
    _load_into_podman(podman, client, CPU_IMAGE)
    before = {c.id for c in podman.containers.list(all=True)}
    proc = llem("run", str(study), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    assert record.status == "completed" and len(record.runs) == 2
    for run in record.runs.values():
        assert run.image_id == client.images.get(CPU_IMAGE).id
        assert podman.containers.list(all=True, filters={"id": run.container_id}) == []
        result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        assert result.tokens.output_tokens > 0
        assert result.context.image_id == run.image_id
    # the containers ran on podman, and are gone from it; Docker never saw them
    assert {c.id for c in podman.containers.list(all=True)} == before
    assert not client.containers.list(all=True, filters={"label": "llem.study"})


def test_podman_not_answering_is_one_message_and_exit_2(tmp_path, fault_image):
    study = write_study(tmp_path, ["fault:ok-1"], execution={"container_engine": "podman"})
    env = {**os.environ, "LLEM_PODMAN_SOCKET": f"unix://{tmp_path}/no-such.sock"}
    proc = llem("run", str(study), cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "podman engine is not reachable" in proc.stderr and "Traceback" not in proc.stderr
    assert "podman system service" in proc.stderr
