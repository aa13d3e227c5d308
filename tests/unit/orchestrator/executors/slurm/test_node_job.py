"""The files the submitting llem and the node exchange: private, and no secret in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.scheduler import make_scheduler
from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.executors.slurm.node_job import (
    NodeExit,
    NodeJob,
    jobs_dir,
    read_node_exit,
    read_node_job,
)
from llenergymeasure.orchestrator.machine.container import ContainerExit, KillReason
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.slots import Slot


def _node_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodeJob:
    scheduler, _ = make_scheduler(tmp_path, {}, n=1)
    return NodeJob(
        run=scheduler.source.queued[0],
        context=scheduler.ctx,
        image=ResolvedImage("img", "sha256:" + "1" * 64, None),
        timeout_s=5.0,
        stall_timeout_s=6.0,
        execution=ExecutionConfig(executor="slurm"),
    )


def test_node_files_round_trip_private_and_hold_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_in_any_file")
    job = _node_job(tmp_path, monkeypatch)
    jobs = jobs_dir(tmp_path / "slurm")
    job.write(jobs)
    path = jobs / f"{job.run.run_id}.job.json"
    assert path.stat().st_mode & 0o777 == 0o600 and "hf_not_in_any_file" not in path.read_text()
    again = read_node_job(jobs, job.run.run_id)
    assert again == job
    workdir = tmp_path / "w"
    request, spec = again.container(workdir, Slot(cpus=(0, 1)))
    assert spec.entrypoint is None and spec.command is None  # the image's own: llem-experiment
    assert spec.user == job.context.user.spec and not spec.user.startswith("0:")
    assert "HF_TOKEN" not in spec.environment and spec.network_none
    assert request.context.cpuset == "0,1" and spec.workdir == workdir
    assert request.context.deadline_s is not None and request.context.deadline_s > job.timeout_s
    exit_ = ContainerExit("c", 3, False, KillReason.STALL, 1.0, 2.5, None, 4)
    node_exit = NodeExit.of(exit_, node="n", gpu_indices=[], gpu_uuids=[], cpuset="0")
    node_exit.write(jobs, job.run.run_id)
    assert read_node_exit(jobs, job.run.run_id).container_exit() == exit_


@pytest.mark.parametrize("tamper", ["mode", "link", "other-run"])
def test_a_job_file_that_is_not_the_submitters_is_refused(tmp_path, monkeypatch, tamper):
    job = _node_job(tmp_path, monkeypatch)
    jobs = jobs_dir(tmp_path / "slurm")
    job.write(jobs)
    path = jobs / f"{job.run.run_id}.job.json"
    if tamper == "mode":
        path.chmod(0o644)
    elif tamper == "link":
        target = tmp_path / "elsewhere.json"
        path.rename(target)
        path.symlink_to(target)
    else:
        path.rename(jobs / "0009_0123abcd_c0.job.json")
        with pytest.raises(UserError, match="describes run"):
            read_node_job(jobs, "0009_0123abcd_c0")
        return
    with pytest.raises(UserError, match="not a job llem wrote for this user"):
        read_node_job(jobs, job.run.run_id)
