"""The Docker daemon stopped mid-study: one clear message (exit 2), the manifest keeps what
completed, and once the daemon is back `llem run --resume` finishes exactly the planned set.

The daemon stopped is a second dockerd of this test's own (`helpers/second_engine.py`, the
`second_engine` fixture), so the engine every other test uses is never touched.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.integration import LLEM, llem, study_dirs, write_study
from helpers.second_engine import SecondEngine
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest
from llenergymeasure.study.manifest_models import StudyRecord

pytestmark = pytest.mark.docker


def _wait_for(study_dir_parent: Path, predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dirs = study_dirs(study_dir_parent)
        if dirs and (dirs[0] / "manifest.jsonl").is_file():
            try:
                if predicate(load_manifest(dirs[0])):
                    return
            except ValueError:
                pass
        time.sleep(0.05)
    raise AssertionError("the study never reached the expected state")


def _run_and_stop_engine(
    study: Path, engine: SecondEngine, ready: Callable[[StudyRecord], bool], settle_s: float = 0
) -> tuple[subprocess.Popen, str, str]:
    """`llem run` on the second engine, stopped `settle_s` after the manifest says `ready`."""
    env = {**os.environ, "DOCKER_HOST": engine.url}
    proc = subprocess.Popen(
        [LLEM, "run", str(study)],
        cwd=study.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(study.parent, ready)
        time.sleep(settle_s)
        engine.stop()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, out, err


def test_daemon_stopped_mid_study_fails_clearly_then_resumes(tmp_path, second_engine):
    models = ["fault:ok-30", "fault:ok-31", "fault:ok-32", "fault:ok-33"]
    study = write_study(tmp_path, models)
    env = {**os.environ, "DOCKER_HOST": second_engine.url}
    proc, out, err = _run_and_stop_engine(
        study,
        second_engine,
        lambda record: (
            sorted(r.status for r in record.runs.values())[:2] == ["completed", "pending"]
            and any(r.status == "running" for r in record.runs.values())
        ),
    )
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err
    assert err.count("error:") == 1 and "Docker engine stopped answering" in err, err
    assert "--resume" in err

    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    runs = sorted(record.runs.values(), key=lambda r: r.run_index)
    assert record.status == "failed"
    assert [r.status for r in runs] == ["completed", "interrupted", "pending", "pending"]
    assert (runs[1].outcome, runs[1].error_type) == ("interrupted", "EngineGone")
    kept = study_dir / runs[0].result_path
    assert kept.is_file()

    second = second_engine.start()
    final = llem("run", str(study), "--resume", cwd=tmp_path, env=env, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    assert study_dirs(tmp_path) == [study_dir]
    record = load_manifest(study_dir)
    runs = sorted(record.runs.values(), key=lambda r: r.run_index)
    assert sorted(record.runs) == sorted(run.run_id for run in StudyPaths(study_dir).read_plan())
    assert record.status == "completed"
    assert [r.status for r in runs] == ["completed"] * 4
    assert [r.attempts for r in runs] == [1, 2, 1, 1]  # the completed run was not repeated
    assert kept.is_file()
    # the container the dead daemon left behind was found by label and removed
    assert second.containers.list(all=True, filters={"label": "llem.owner_pid"}) == []


def test_daemon_stopped_with_two_runs_in_flight_interrupts_both(tmp_path, second_engine):
    models = ["fault:ok-90", "fault:ok-91", "fault:ok-92"]  # long: they outlast the stop
    study = write_study(tmp_path, models, execution={"max_parallel": 2, "cpu_ids": [0, 1]})
    proc, out, err = _run_and_stop_engine(
        study,
        second_engine,
        lambda record: sum(r.status == "running" for r in record.runs.values()) == 2,
        settle_s=0.5,
    )
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err
    assert err.count("error:") == 1 and "Docker engine stopped answering" in err, err
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    runs = sorted(record.runs.values(), key=lambda r: r.run_index)
    assert record.status == "failed"
    # Both were in flight; a run the engine let finish while it shut down is kept, every other
    # one is interrupted (it runs again on --resume), none is failed, none is lost.
    assert runs[2].status == "pending"
    assert {r.status for r in runs[:2]} <= {"interrupted", "completed"}
    gone = [r for r in runs[:2] if r.status == "interrupted"]
    assert gone and all(r.error_type == "EngineGone" for r in gone)
