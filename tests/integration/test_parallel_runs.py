"""Several runs at once (`execution.max_parallel`) on a real engine: disjoint CPU sets, overlap
recorded, faults kept apart, signals and `kill -9` with two runs in flight."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from helpers.integration import LLEM, llem, read_json, study_dirs, write_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.results.load import load_study_results
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker

PARALLEL = {"max_parallel": 2, "cpu_ids": [0, 1]}


def _interval(run) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(run.started_at), datetime.fromisoformat(run.finished_at)


def _runs(study_dir: Path) -> list:
    return sorted(load_manifest(study_dir).runs.values(), key=lambda r: r.run_index)


def _start(study: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [LLEM, "run", str(study)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _wait_running(client, n: int, timeout: float = 60) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        live = client.containers.list(filters={"label": "llem.run", "status": "running"})
        if len(live) >= n:
            return live
        time.sleep(0.05)
    raise AssertionError(f"{n} containers never ran at once")


def test_two_slots_run_pairwise_on_disjoint_cpus(tmp_path, client, fault_image):
    study = write_study(tmp_path, [f"fault:ok-{n}" for n in (30, 31, 32, 33)], execution=PARALLEL)
    proc = _start(study, tmp_path)
    seen: list[set[str]] = []
    for _ in range(2):  # each pair, while both of its containers run
        live = _wait_running(client, 2)
        cpusets = [c.attrs["HostConfig"]["CpusetCpus"] for c in live]
        assert sorted(cpusets) == ["0", "1"], cpusets  # one CPU each, never shared
        seen.append({c.labels["llem.run"] for c in live})
        while {
            c.labels["llem.run"] for c in client.containers.list(filters={"label": "llem.run"})
        } & seen[-1]:
            time.sleep(0.05)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    runs = _runs(study_dir)
    assert [r.status for r in runs] == ["completed"] * 4
    first, second, third, fourth = (_interval(r) for r in runs)
    # planned order: 0 and 1 together, then 2 and 3 as slots free up
    assert first[0] < second[1] and second[0] < first[1]
    assert third[0] < fourth[1] and fourth[0] < third[1]
    assert seen[0] == {runs[0].run_id, runs[1].run_id}
    loaded = {run.planned.run_id: run.result for run in load_study_results(study_dir).runs}
    for run in runs:
        assert run.cpuset in ("0", "1")
        assert run.concurrent_runs, run  # each overlapped its partner at least
        # result.json is the container's alone; the host's findings join it at load
        written = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        assert "concurrent_runs" not in [w.code for w in written.warnings]
        result = loaded[run.run_id]
        assert result is not None
        codes = [w.code for w in result.warnings]
        assert "concurrent_runs" in codes
        assert result.energy.cpu_package_j is None
        assert result.energy.cpu_package_j_reason.startswith("host shared with")
        assert result.context.cpuset == run.cpuset and result.context.max_parallel == 2
    assert runs[1].run_id in runs[0].concurrent_runs


def test_faults_in_parallel_are_each_classified_and_the_ok_run_completes(
    tmp_path, client, fault_image
):
    models = ["fault:ok-30", "fault:crash", "fault:hang", "fault:oom"]
    study = write_study(tmp_path, models, execution={**PARALLEL, "experiment_timeout_s": 6})
    proc = llem("run", str(study), "--memory", "64m", cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    ok, crash, hang, oom = _runs(study_dir)
    assert ok.status == "completed"
    assert (crash.outcome, crash.exit_code) == ("crashed", 3)
    assert hang.outcome == "killed_timeout"
    assert oom.outcome == "killed_oom"
    # the ok run was in flight while the faults happened beside it
    assert {crash.run_id, hang.run_id} <= set(ok.concurrent_runs)
    assert not client.containers.list(all=True, filters={"label": "llem.run"})


def test_first_signal_stops_both_runs_in_flight_and_second_kills_at_once(
    tmp_path, client, fault_image
):
    study = write_study(
        tmp_path, ["fault:hang", "fault:stubborn", "fault:ok-1"], execution=PARALLEL
    )
    proc = _start(study, tmp_path)
    _wait_running(client, 2)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.time()
    proc.send_signal(signal.SIGINT)  # fault:stubborn ignores SIGTERM: only this stops it
    assert proc.wait(timeout=20) == 130
    assert time.time() - sent < 1.7
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    hang, stubborn, never = _runs(study_dir)
    assert record.status == "interrupted"
    assert (hang.status, stubborn.status) == ("interrupted", "interrupted")
    assert stubborn.exit_code == 137
    assert never.status == "pending"  # nothing starts after a stop
    assert not client.containers.list(all=True, filters={"label": "llem.run"})


def test_first_signal_gives_every_run_in_flight_its_grace(tmp_path, client, fault_image):
    study = write_study(tmp_path, ["fault:hang", "fault:hang"], execution=PARALLEL)
    proc = _start(study, tmp_path)
    _wait_running(client, 2)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 130
    (study_dir,) = study_dirs(tmp_path)
    for run in _runs(study_dir):
        assert (run.status, run.outcome) == ("interrupted", "interrupted")
        # fault:hang honours SIGTERM: its own error.json, written within the grace
        error = read_json(study_dir / "experiments" / run.run_id / "error.json")
        assert error["type"] == "Interrupted"


def test_kill9_with_two_in_flight_then_resume_runs_exactly_the_plan(tmp_path, client, fault_image):
    study = write_study(tmp_path, [f"fault:ok-{n}" for n in (20, 21, 22, 23)], execution=PARALLEL)
    proc = subprocess.Popen([LLEM, "run", str(study)], cwd=tmp_path, stdout=subprocess.DEVNULL)
    _wait_running(client, 2)
    proc.kill()
    proc.wait()
    (study_dir,) = study_dirs(tmp_path)
    assert sorted(r.status for r in _runs(study_dir))[-2:] == ["running", "running"]
    final = llem("run", str(study), "--resume", cwd=tmp_path, timeout=120)
    assert final.returncode == 0, final.stdout[-3000:]
    assert "removed 2 container(s) left by a llem process" in final.stdout
    assert study_dirs(tmp_path) == [study_dir]
    runs = _runs(study_dir)
    assert sorted(r.run_id for r in runs) == sorted(
        r.run_id for r in StudyPaths(study_dir).read_plan()
    )
    assert [r.status for r in runs] == ["completed"] * 4
    assert [r.attempts for r in runs] == [2, 2, 1, 1]  # the two in flight ran again, once
    assert not client.containers.list(all=True, filters={"label": "llem.run"})
