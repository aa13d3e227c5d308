"""The Slurm executor on a real one-node cluster (scripts/slurm-local: munged, slurmdbd on
MariaDB, slurmctld, slurmd), containers on this host's Docker engine: one array task per run,
job ids in the manifest, sacct's view, faults, scancel from outside, kill -9 and --resume,
Ctrl+C, --detach with `llem status`, and a controller that is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.integration import LLEM, llem, study_dirs, tiny_cpu_study, write_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.run import Placement, RunRequest
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[2]
SLURM = {"executor": "slurm", "slurm": {"partition": "llem", "poll_s": 0.5}}


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    try:
        up = (
            "UP"
            in subprocess.run(
                ["scontrol", "ping"], capture_output=True, text=True, timeout=30
            ).stdout
        )
    except (OSError, subprocess.TimeoutExpired):
        up = False
    if not up:
        if os.environ.get("LLEM_REQUIRE_SLURM") == "1":
            pytest.fail("Slurm required but no controller answers: `bash scripts/slurm-local`")
        pytest.skip("no Slurm controller answers (`bash scripts/slurm-local` starts one)")


def _job_names(study_dir: Path) -> list[str]:
    return [f"llem.{study_dir.name}.{p.stem}" for p in sorted((study_dir / "slurm").glob("*.runs"))]


def _sacct(study_dir: Path) -> dict[str, str]:
    """job id -> state of every task of the study's jobs, from accounting."""
    out = subprocess.run(
        [
            "sacct",
            "-X",
            "-n",
            "-P",
            "-S",
            "2000-01-01",
            "--name",
            ",".join(_job_names(study_dir)),
            "--format",
            "JobID,State",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("|")[0]: line.split("|")[1] for line in out.splitlines() if line}


def _sacct_settled(study_dir: Path, n: int, timeout: float = 30) -> dict[str, str]:
    """sacct once all n tasks have their final state there (slurmdbd is asynchronous)."""
    deadline = time.time() + timeout
    while True:
        jobs = _sacct(study_dir)
        if len(jobs) == n and all(
            s.split()[0] not in ("PENDING", "RUNNING") for s in jobs.values()
        ):
            return jobs
        if time.time() > deadline:
            raise AssertionError(f"sacct never settled at {n} ended jobs: {jobs}")
        time.sleep(0.5)


def _queued(study_dir: Path) -> list[str]:
    """The study's tasks squeue lists as pending or running."""
    names = _job_names(study_dir)
    if not names:
        return []
    out = subprocess.run(
        ["squeue", "-h", "-r", "--name", ",".join(names), "-o", "%i|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line]


def _started(folder: Path) -> Path | None:
    """The study folder once its manifest is there (it is created just after the folder)."""
    found = [d for d in study_dirs(folder) if (d / "manifest.jsonl").is_file()]
    return found[0] if found else None


def _runs(study_dir: Path) -> list:
    return sorted(load_manifest(study_dir).runs.values(), key=lambda r: r.run_index)


def _kill_9_once_a_run_ended(study: Path, folder: Path) -> Path:
    """`llem run` killed with SIGKILL as soon as one of its runs is collected; its folder."""
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    study_dir = _wait_for(lambda: _started(folder), "a study folder with its manifest")
    _wait_for(lambda: any(r.status == "completed" for r in _runs(study_dir)), "a run ended", 90)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return study_dir


def _wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def test_a_four_run_cpu_study_runs_through_slurm(tmp_path, client):
    study = tiny_cpu_study(tmp_path, client, [1, 2], **SLURM, n_cycles=2)
    proc = llem("run", str(study), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "a compute node sees the output folder" in proc.stdout
    (study_dir,) = study_dirs(tmp_path)
    runs = _runs(study_dir)
    assert load_manifest(study_dir).status == "completed" and len(runs) == 4
    job_ids = [run.executor_job_id for run in runs]
    assert all(job_ids) and len(set(job_ids)) == 4
    for run in runs:
        assert run.status == "completed" and run.node == os.uname().nodename
        result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        assert result.context.run_id == run.run_id and result.tokens.output_tokens > 0
        assert result.context.cpuset == run.cpuset  # the job's CPUs, bound on the node
        assert not run.concurrent_runs  # exclusive nodes: no run shared its host
        # where the node placed it is the node's file; config.json stays the submitter's
        work = StudyPaths(study_dir).work_paths(run.run_id)
        placed = Placement.model_validate_json((work / WorkPaths.PLACEMENT).read_text())
        assert placed.cpuset == run.cpuset and placed.node == run.node
        submitted = RunRequest.model_validate_json((work / WorkPaths.CONFIG).read_text())
        assert submitted.context.cpuset is None
    jobs = _sacct_settled(study_dir, 4)
    assert sorted(jobs) == sorted(job_ids) and set(jobs.values()) == {"COMPLETED"}
    assert (study_dir / "results.parquet").is_file()
    shown = llem("status", str(study_dir), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert [r["executor_job_id"] for r in json.loads(shown.stdout)["runs"].values()]


def test_faults_through_slurm_crash_timeout_and_an_outside_scancel(tmp_path, fault_image):
    study = write_study(
        tmp_path,
        ["fault:crash", "fault:hang", "fault:ok-300"],
        execution={**SLURM, "experiment_timeout_s": 4},
    )
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    study_dir = _wait_for(lambda: _started(tmp_path), "a study folder with its manifest")
    third = _wait_for(lambda: _runs(study_dir)[2].executor_job_id, "the third job's id")
    _wait_for(lambda: f"{third}|RUNNING" in _queued(study_dir), "the third job running", 90)
    subprocess.run(["scancel", third], check=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out.decode()[-3000:]
    crash, hang, cancelled = _runs(study_dir)
    assert (crash.outcome, crash.error_type, crash.exit_code) == ("crashed", "Crash", 3)
    assert crash.log_tail  # the container's own last lines
    assert (hang.outcome, hang.error_type) == ("killed_timeout", "Timeout")
    assert (cancelled.outcome, cancelled.status) == ("interrupted", "interrupted")
    assert "cancelled" in cancelled.error
    assert set(_sacct_settled(study_dir, 3)) == {crash.executor_job_id, hang.executor_job_id, third}


def test_a_job_whose_node_side_llem_fails_is_a_crash_with_its_slurm_output(tmp_path, fault_image):
    broken = {
        **SLURM["slurm"],
        "llem_command": ["sh", "-c", "echo node llem is broken >&2; exit 7"],
    }
    study = write_study(tmp_path, ["fault:ok-1"], execution={**SLURM, "slurm": broken})
    proc = llem("run", str(study), cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    (run,) = _runs(study_dir)
    assert (run.outcome, run.error_type) == ("crashed", "JobCrash")
    assert "FAILED" in run.error and "exit code 7" in run.error
    assert "node llem is broken" in run.log_tail


def test_kill_9_then_resume_follows_the_jobs_and_submits_none_twice(tmp_path, fault_image):
    study = write_study(tmp_path, [f"fault:ok-{n}" for n in (20, 21, 22, 23)], execution=SLURM)
    study_dir = _kill_9_once_a_run_ended(study, tmp_path)
    assert len(_queued(study_dir)) >= 1  # the jobs go on without the llem that submitted them
    resumed = llem("run", str(study), "--resume", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "following" in resumed.stdout
    assert study_dirs(tmp_path) == [study_dir]
    runs = _runs(study_dir)
    assert [r.status for r in runs] == ["completed"] * 4 and all(r.attempts == 1 for r in runs)
    jobs = _sacct_settled(study_dir, 4)  # exactly one job per run
    assert sorted(jobs) == sorted(r.executor_job_id for r in runs)
    assert len(list((study_dir / "slurm").glob("*.runs"))) == 1


def test_ctrl_c_cancels_every_job_of_the_study(tmp_path, fault_image):
    study = write_study(
        tmp_path, ["fault:hang"] * 1 + ["fault:ok-50", "fault:ok-51"], execution=SLURM
    )
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    study_dir = _wait_for(lambda: _started(tmp_path), "a study folder with its manifest")
    _wait_for(lambda: any("RUNNING" in q for q in _queued(study_dir)), "a job running", 90)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out.decode()[-3000:]
    assert _queued(study_dir) == []
    runs = _runs(study_dir)
    assert [r.status for r in runs] == ["interrupted"] * 3
    assert load_manifest(study_dir).status == "interrupted"


def test_detach_then_status_collects_the_ended_jobs(tmp_path, fault_image):
    study = write_study(tmp_path, ["fault:ok-5", "fault:ok-6"], execution=SLURM)
    proc = llem("run", str(study), "--detach", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "submitted" in proc.stdout
    (study_dir,) = study_dirs(tmp_path)
    assert all(r.executor_job_id for r in _runs(study_dir))

    def collected() -> dict | None:
        shown = llem("status", str(study_dir), "--json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        return data if data["status"] == "completed" else None

    data = _wait_for(collected, "the study completed by `llem status`", 120)
    assert {r["status"] for r in data["runs"].values()} == {"completed"}
    assert (study_dir / "results.parquet").is_file()


def test_a_controller_that_is_down_is_one_message_and_exit_2(tmp_path, fault_image):
    study = write_study(tmp_path, ["fault:ok-1"], execution=SLURM)
    subprocess.run(["pkill", "-x", "slurmctld"], check=False)
    try:
        _wait_for(
            lambda: (
                "UP"
                not in subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout
            ),
            "slurmctld down",
        )
        proc = llem("run", str(study), cwd=tmp_path, timeout=120)
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "slurm-local")], check=True, capture_output=True
        )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Slurm" in proc.stderr or "slurm" in proc.stderr
    assert study_dirs(tmp_path) == []  # nothing written


def test_a_run_lost_to_a_node_failure_is_submitted_again(tmp_path, fault_image):
    study = write_study(tmp_path, ["fault:ok-150", "fault:ok-20"], execution=SLURM)
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    study_dir = _wait_for(lambda: _started(tmp_path), "a study folder with its manifest")
    first = _wait_for(lambda: _runs(study_dir)[0].executor_job_id, "the first job's id")
    _wait_for(lambda: f"{first}|RUNNING" in _queued(study_dir), "the first job running", 90)
    node = os.uname().nodename.split(".")[0]
    try:  # an administrator takes the node down under the running job: Slurm says NODE_FAIL
        subprocess.run(
            ["scontrol", "update", f"nodename={node}", "state=down", "reason=llem-test"],
            check=True,
        )
        _wait_for(lambda: _sacct(study_dir).get(first) == "NODE_FAIL", "NODE_FAIL", 60)
    finally:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=False)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()[-3000:]
    lost, other = _runs(study_dir)
    assert lost.status == other.status == "completed"
    assert lost.attempts == 2 and other.attempts == 1
    assert lost.executor_job_id != first  # its second job
    jobs = _sacct_settled(study_dir, 3)
    assert jobs[first] == "NODE_FAIL" and jobs[lost.executor_job_id] == "COMPLETED"
    assert b"NODE_FAIL; submitting it again" in out


SECRET = "hf_llemSlurmSecret0123456789"


def test_no_secret_reaches_a_file_or_the_node_container_and_a_percent_path_works(
    tmp_path, fault_image
):
    folder = tmp_path / "100%-runs"  # sbatch expands % in --output: escaped
    folder.mkdir()
    study = write_study(folder, ["fault:net-1"], execution=SLURM)
    env = {**os.environ, "HF_TOKEN": SECRET, "HUGGING_FACE_HUB_TOKEN": SECRET}
    proc = llem("run", str(study), cwd=folder, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(folder)
    (run,) = _runs(study_dir)
    assert run.status == "completed"
    log = (study_dir / "experiments" / run.run_id / "container.log").read_text()
    assert "token variables: []" in log and "interfaces: ['lo']" in log
    assert (study_dir / "slurm").stat().st_mode & 0o777 == 0o700
    job_files = list((study_dir / "slurm" / "jobs").iterdir())
    assert job_files and all(p.stat().st_mode & 0o777 == 0o600 for p in job_files)
    assert list((study_dir / "slurm").glob("b0001_0.out"))  # the output where it was asked for
    for path in study_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), f"the token is in {path}"


def test_a_job_file_someone_else_could_have_written_is_not_run(tmp_path, fault_image):
    held = {**SLURM["slurm"], "extra_args": ["--hold"]}
    study = write_study(tmp_path, ["fault:ok-1"], execution={**SLURM, "slurm": held})
    proc = subprocess.Popen(
        [LLEM, "run", str(study)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    study_dir = _wait_for(lambda: _started(tmp_path), "a study folder with its manifest")
    job_id = _wait_for(lambda: _runs(study_dir)[0].executor_job_id, "the job's id")
    (job_file,) = (study_dir / "slurm" / "jobs").glob("*.job.json")
    job_file.chmod(0o644)  # as if another user had written or could write it
    if os.geteuid() == 0:
        os.chown(job_file, 12345, 12345)
    subprocess.run(["scontrol", "release", job_id.split("_")[0]], check=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out.decode()[-3000:]
    (run,) = _runs(study_dir)
    assert (run.outcome, run.error_type) == ("crashed", "JobCrash")
    assert "not a job llem wrote for this user" in (run.log_tail or "")
    assert not (study_dir / "experiments" / run.run_id / "container.log").exists()  # none ran


@pytest.mark.skipif(os.geteuid() != 0, reason="a second user needs root to create")
def test_another_users_job_of_the_same_name_is_never_taken_for_ours(tmp_path, fault_image):
    other = "llem-other"
    if subprocess.run(["id", other], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", other], check=True)
    study = write_study(tmp_path, ["fault:ok-30"], execution=SLURM)
    proc = llem("run", str(study), "--detach", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    (name,) = _job_names(study_dir)
    theirs = subprocess.run(
        [
            *("runuser", "-u", other, "--", "sbatch", "--parsable", "--partition=llem"),
            *(f"--job-name={name}", "--output=/dev/null", "--chdir=/tmp", "--wrap=sleep 300"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        resumed = llem("run", str(study), "--resume", cwd=tmp_path, timeout=180)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        (run,) = _runs(study_dir)
        assert run.status == "completed" and not run.executor_job_id.startswith(theirs)
    finally:
        subprocess.run(["scancel", theirs], check=False)


def _search_study(folder: Path, model: str, n_prompts: list[int]) -> Path:
    search = {
        "objective": {"maximize": "throughput.output_tokens_per_s"},
        "space": {"n_prompts": n_prompts},
        "trials": len(n_prompts),
        "sampler": "grid",
        "confirm": {"top": 1},
    }
    return write_study(folder, [model], execution={**SLURM, "max_parallel": 2}, search=search)


def test_a_search_runs_through_slurm_two_trials_at_a_time(tmp_path, fault_image):
    study = _search_study(tmp_path, "fault:ok-2", [1, 2, 3])
    proc = llem("run", str(study), cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    runs = _runs(study_dir)
    assert record.status == "completed" and len(runs) == 3 + 2
    assert all(r.status == "completed" and r.executor_job_id for r in runs)
    assert record.search is not None and len(record.search.trials) == 3
    assert [(c.round, c.cycle) for c in record.search.confirms] == [(1, 1), (2, 2)]
    jobs = _sacct_settled(study_dir, 5)  # one Slurm job per run, trials and confirmation
    assert sorted(jobs) == sorted(r.executor_job_id for r in runs)


def test_a_search_killed_on_slurm_resumes_without_submitting_a_trial_twice(tmp_path, fault_image):
    study = _search_study(tmp_path, "fault:ok-20", [1, 2, 3, 4])
    study_dir = _kill_9_once_a_run_ended(study, tmp_path)
    ended_before = {r.run_id for r in _runs(study_dir) if r.status == "completed"}
    resumed = llem("run", str(study), "--resume", cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert study_dirs(tmp_path) == [study_dir]
    record = load_manifest(study_dir)
    runs = _runs(study_dir)
    assert record.status == "completed" and len(runs) == 4 + 2
    assert all(r.status == "completed" for r in runs)
    # a run recorded as starting but killed before its sbatch starts again (attempt 2); one
    # that had ended never does, and no run has a second Slurm job
    assert all(r.attempts == 1 for r in runs if r.run_id in ended_before)
    jobs = _sacct_settled(study_dir, 6)  # exactly one job per run
    assert sorted(jobs) == sorted(r.executor_job_id for r in runs)
