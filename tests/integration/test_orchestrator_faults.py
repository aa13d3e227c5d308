"""`llem run` against real containers whose behaviour is scripted (the fault image)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from helpers.integration import llem, read_json, study_dirs, write_study
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker


def _run_one(tmp_path: Path, model: str, *extra: str, **execution: float) -> tuple[Path, object]:
    study = write_study(tmp_path, [model], execution=execution or None)
    proc = llem("run", str(study), *extra, cwd=tmp_path)
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    (run,) = record.runs.values()
    return study_dir, (proc, record, run)


def _no_llem_containers(client: docker.DockerClient) -> None:
    assert client.containers.list(all=True, filters={"label": "llem.owner_pid"}) == []


def test_ok_run_completes_and_container_is_removed(tmp_path, client, fault_image):
    study_dir, (proc, record, run) = _run_one(tmp_path, "fault:ok-3")
    assert proc.returncode == 0, proc.stderr
    assert (run.status, run.outcome, run.attempts) == ("completed", "completed", 1)
    work = study_dir / "experiments" / run.run_id
    assert read_json(work / "result.json")["context"]["run_id"] == run.run_id
    assert read_json(work / "config.json")["context"]["image_id"] == run.image_id
    assert run.image_id.startswith("sha256:") and run.result_path
    assert "fault image: fault:ok-3" in (work / "container.log").read_text()
    assert record.status == "completed"
    assert (study_dir / "plan.json").is_file() and (study_dir / "study.yaml").is_file()
    _no_llem_containers(client)


def test_an_online_studys_experiments_have_no_network_either(tmp_path, client, fault_image):
    # Online means hub repositories may be fetched before the runs; an experiment never has a
    # network (README: Security).
    study = write_study(tmp_path, ["fault:net-1"], offline=False)
    proc = llem("run", str(study), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    assert (run.status, run.outcome) == ("completed", "completed")
    work = study_dir / "experiments" / run.run_id
    assert "interfaces: ['lo']" in (work / "container.log").read_text()
    assert read_json(work / "config.json")["context"]["offline"] is True


def test_handled_error_is_failed_with_error_json(tmp_path, client, fault_image):
    study_dir, (proc, record, run) = _run_one(tmp_path, "fault:error")
    assert proc.returncode == 1
    assert (run.status, run.outcome, run.error_type) == ("failed", "failed", "ValueError")
    assert run.error == "scripted failure" and run.exit_code == 1
    assert (study_dir / "experiments" / run.run_id / "error.json").is_file()
    assert record.status == "failed"
    _no_llem_containers(client)


def test_crash_records_exit_code_and_log_tail(tmp_path, client, fault_image):
    study_dir, (_proc, _, run) = _run_one(tmp_path, "fault:crash")
    assert (run.status, run.outcome, run.exit_code) == ("failed", "crashed", 3)
    assert "about to crash" in (run.log_tail or "")
    work = study_dir / "experiments" / run.run_id
    assert not (work / "result.json").exists() and not (work / "error.json").exists()
    _no_llem_containers(client)


def test_hang_is_killed_at_the_timeout(tmp_path, client, fault_image):
    _, (_proc, _, run) = _run_one(tmp_path, "fault:hang", experiment_timeout_s=3)
    assert (run.status, run.outcome, run.exit_code) == ("failed", "killed_timeout", 137)
    assert 3 <= run.duration_s < 3 + 2 + 3  # timeout + grace + engine slack
    _no_llem_containers(client)


def test_stall_is_killed_after_the_stall_timeout(tmp_path, client, fault_image):
    _, (_proc, _, run) = _run_one(tmp_path, "fault:stall", stall_timeout_s=2)
    assert (run.status, run.outcome) == ("failed", "killed_stall")
    assert run.duration_s < 2 + 5
    _no_llem_containers(client)


def test_memory_limit_gives_killed_oom(tmp_path, client, fault_image):
    _, (_proc, _, run) = _run_one(tmp_path, "fault:oom", "--memory", "64m")
    assert (run.status, run.outcome) == ("failed", "killed_oom"), run
    _no_llem_containers(client)


@pytest.mark.parametrize(
    ("model", "error_type"),
    [("fault:corrupt-result", "InvalidResult"), ("fault:no-result", "NoResult")],
)
def test_bad_or_missing_result_is_a_failure(tmp_path, client, fault_image, model, error_type):
    _, (_proc, _, run) = _run_one(tmp_path, model)
    assert (run.status, run.outcome, run.error_type, run.exit_code) == (
        "failed",
        "failed",
        error_type,
        0,
    )


def test_missing_image_exits_2_before_anything_runs(tmp_path, client):
    study = write_study(tmp_path, ["fault:ok-1"], image="llem-test/absent:nope")
    proc = llem("run", str(study), cwd=tmp_path)
    assert proc.returncode == 2
    assert "llem-test/absent:nope" in proc.stderr and "Traceback" not in proc.stderr
    assert study_dirs(tmp_path) == []


def test_resume_keeps_completed_and_retry_failed_reruns(tmp_path, client, fault_image):
    study = write_study(tmp_path, ["fault:ok-1", "fault:error"])
    first = llem("run", str(study), cwd=tmp_path)
    assert first.returncode == 1
    again = llem("run", str(study), "--resume", cwd=tmp_path)
    (study_dir,) = study_dirs(tmp_path)
    runs = sorted(load_manifest(study_dir).runs.values(), key=lambda r: r.run_index)
    assert again.returncode == 1 and [r.attempts for r in runs] == [1, 1]
    retry = llem("run", str(study), "--resume", "--retry-failed", cwd=tmp_path)
    runs = sorted(load_manifest(study_dir).runs.values(), key=lambda r: r.run_index)
    assert retry.returncode == 1 and [r.attempts for r in runs] == [1, 2]
    assert len(study_dirs(tmp_path)) == 1
