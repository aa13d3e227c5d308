"""A container ends itself at its deadline (config.json `context.deadline_s`), with no llem
watching it: the real CPU image, started with the Docker SDK and never killed from outside,
on an experiment that would run for ten minutes. And its supervisor, PID 1 of the container,
passes the engine's SIGTERM on to the measurement."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from helpers.integration import CPU_IMAGE, make_tiny_model
from helpers.workdirs import write_workdir
from llenergymeasure.config.study import DEFAULT_CONTAINER_USER
from llenergymeasure.contract.workdir import CONTAINER_WORKDIR, ErrorReport, WorkPaths
from llenergymeasure.orchestrator.machine.container import owner_labels
from llenergymeasure.orchestrator.machine.container_user import ContainerUser
from llenergymeasure.study.work_files import read_progress

pytestmark = pytest.mark.docker

DEADLINE_S = 20.0
MODEL = "/llem/models/tiny"


def _start(client: docker.DockerClient, tmp_path: Path, deadline_s: float) -> tuple[Any, Path]:
    """The CPU image on a ten-minute experiment of the tiny model, with `deadline_s`."""
    if not client.images.list(name="llenergymeasure/cpu"):
        pytest.fail("llenergymeasure/cpu is missing: run `llem images build cpu`")
    model = make_tiny_model(tmp_path)
    work = write_workdir(tmp_path / "work", MODEL, min_window_s=600.0)
    request = json.loads((work / WorkPaths.CONFIG).read_text())
    request["context"]["deadline_s"] = deadline_s
    (work / WorkPaths.CONFIG).write_text(json.dumps(request))
    user = ContainerUser.for_invoker(DEFAULT_CONTAINER_USER)
    user.hand_over(work)
    container = client.containers.run(
        CPU_IMAGE,
        name=f"llem-test-deadline-{uuid.uuid4().hex[:8]}",
        labels=owner_labels(),
        user=user.spec,
        network_mode="none",
        environment={"HOME": "/tmp", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        volumes={
            str(work): {"bind": CONTAINER_WORKDIR, "mode": "rw"},
            str(model): {"bind": MODEL, "mode": "ro"},
        },
        detach=True,
    )
    return container, work


def test_a_container_ends_itself_at_its_deadline_without_a_host_watching(tmp_path, client):
    container, work = _start(client, tmp_path, DEADLINE_S)
    started = time.monotonic()
    try:
        status = container.wait(timeout=DEADLINE_S + 120)
        ended = time.monotonic() - started
        container.reload()
        state = container.attrs["State"]
        log = container.logs().decode(errors="replace")[-3000:]
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 137, log
    assert not state["OOMKilled"]
    # its deadline, then its run's SIGTERM (which this run answers within a second)
    assert DEADLINE_S - 1 <= ended < DEADLINE_S + 10, log
    error = ErrorReport.model_validate_json((work / WorkPaths.ERROR).read_text())
    assert error.type == "DeadlineExceeded" and f"{DEADLINE_S:g} s" in error.message
    assert not (work / WorkPaths.RESULT).exists()
    events = [event.event for event in read_progress(work / WorkPaths.PROGRESS)]
    assert events[0] == "started" and "finished" not in events


def test_the_engines_sigterm_reaches_the_measurement_through_its_supervisor(tmp_path, client):
    container, work = _start(client, tmp_path, 600.0)
    try:
        deadline = time.monotonic() + 120
        while "batch" not in {e.event for e in read_progress(work / WorkPaths.PROGRESS)}:
            assert time.monotonic() < deadline, container.logs().decode(errors="replace")[-3000:]
            container.reload()
            assert container.status == "running", container.logs().decode(errors="replace")
            time.sleep(0.2)
        sent = time.monotonic()
        container.kill(signal="SIGTERM")
        status = container.wait(timeout=30)
        ended = time.monotonic() - sent
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 1 and ended < 5  # the measurement's own answer, at once
    error = ErrorReport.model_validate_json((work / WorkPaths.ERROR).read_text())
    assert error.type == "Interrupted" and "SIGTERM" in error.message
