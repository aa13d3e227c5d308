"""The fault-injection suite: `llem run` stopped in each way it can die, then `--resume`.

Real `llem` processes and containers on the fault image (`fault_image/fault.py` scripts what each
container does):

- SIGHUP, SIGTERM, SIGINT, SIGQUIT and SIGKILL at random instants (seeded; the seed is printed):
  right at start, during the pre-flight, during a run, during a gap;
- the Docker engine restarted under a running study (a second dockerd of the test's own);
- the disk under the study folder full (a small tmpfs);
- a second `llem run` on the same study, and `llem status` beside it;

and, in test_fault_injection_gpu.py, llem killed while GPU settings are applied (in-memory
GPUs) and a corrupt GPU-settings ledger. After each: a graceful stop exits 130 with no
container left once its grace is over; the failure is one message (exit 2); the manifest loads;
and `llem run --resume` completes exactly the plan: every planned run completed in exactly one
journal line, none completed earlier started again, no container of llem's left.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest

from helpers.integration import LLEM, llem, write_study
from helpers.journal import (
    Completed,
    assert_exactly_the_plan,
    assert_kept,
    completed,
    journal,
    runs_started,
    the_study_dir,
)
from helpers.second_engine import SecondEngine
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker

SEED = 20_261_207
GAP_S = 0.6
GRACE_S = 2 + 4  # the container's grace, and slack for a loaded machine
PHASES = ("start", "pre-flight", "run", "gap")


class Llem:
    """One `llem run` whose output is read as it comes (a phase is waited for on it)."""

    def __init__(self, study: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [LLEM, "run", str(study), *args],
            cwd=study.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def said(self, start: str) -> bool:
        return any(line.startswith(start) for line in self.lines)

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, "".join(self.lines)

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _until(llem_run: Llem, seen, timeout: float = 60) -> bool:
    """Wait until `seen()`; False when llem ended first."""
    deadline = time.monotonic() + timeout
    while not seen():
        if llem_run.proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the instant never came:\n" + "".join(llem_run.lines)
        time.sleep(0.01)
    return True


def _new_lines(folder: Path, before: int) -> list[dict]:
    return journal(the_study_dir(folder))[before:]


def _owned_by(client: docker.DockerClient, pids: list[int]) -> list[str]:
    """Containers (any state) labelled as started by one of these llem processes."""
    return [
        c.name
        for pid in pids
        for c in client.containers.list(all=True, filters={"label": f"llem.owner_pid={pid}"})
    ]


def _of_study(client: docker.DockerClient, study_dir: Path) -> list[str]:
    filters = {"label": f"llem.study={study_dir.name}"}
    return [c.name for c in client.containers.list(all=True, filters=filters)]


def _at_instant(run: Llem, folder: Path, phase: str, before: int, rng: random.Random) -> None:
    """Wait for a random instant of `phase` of this invocation."""
    if phase == "start":
        time.sleep(rng.uniform(0, 0.05))
    elif phase == "pre-flight":  # the plan shown; the images, locks and folder being resolved
        _until(run, lambda: run.said("Run timeout"))
        time.sleep(rng.uniform(0, 0.03))
    elif phase == "run":
        _until(run, lambda: runs_started(_new_lines(folder, before)))
        time.sleep(rng.uniform(0, 0.4))
    else:  # a gap: a run of this invocation completed, the next one not started
        _until(
            run,
            lambda: any(line.get("status") == "completed" for line in _new_lines(folder, before)),
        )
        time.sleep(rng.uniform(0.05, GAP_S - 0.2))


def _signal_round(
    client: docker.DockerClient,
    study: Path,
    sig: signal.Signals,
    phase: str,
    rng: random.Random,
) -> int:
    """One `llem run --resume` stopped by `sig` at an instant of `phase`; its pid."""
    folder = study.parent
    before = len(journal(the_study_dir(folder)))
    run = Llem(study, "--resume")
    try:
        _at_instant(run, folder, phase, before, rng)
        sent = time.monotonic()
        run.proc.send_signal(sig)
        code, out = run.wait(timeout=60)
    finally:
        run.end()
    took = time.monotonic() - sent
    study_dir = the_study_dir(folder)
    started = runs_started(_new_lines(folder, before))
    print(f"  {sig.name} at {phase}: exit {code} after {took:.2f} s, {len(started)} run(s) started")
    if study_dir is not None and (study_dir / "manifest.jsonl").exists():
        load_manifest(study_dir)  # whatever the instant, the manifest loads
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL, out
        return run.proc.pid
    if code == -sig:  # before llem's handlers were installed (startup, pre-flight)
        assert not started, f"{sig.name} killed llem with runs started:\n{out}"
    elif study_dir is None:  # before the study folder had a manifest: nothing to record
        assert code == 130, out
        assert not started, out
    else:
        assert code == 130, out
        record = load_manifest(study_dir)
        assert record.status == "interrupted"
        assert all(r.status != "running" for r in record.runs.values()), record.runs
        assert "Traceback" not in out, out
    assert took < GRACE_S, out
    assert _owned_by(client, [run.proc.pid]) == []  # stopped and removed within its grace
    return run.proc.pid


@pytest.mark.parametrize(
    "sig",
    [signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGKILL],
    ids=lambda sig: sig.name,
)
def test_a_signal_at_random_instants_then_resume_completes_exactly_the_plan(
    tmp_path, client, fault_image, sig
):
    seed = SEED + sig
    rng = random.Random(seed)
    print(f"seed {seed}")
    models = [f"fault:ok-{n}" for n in (3, 4, 5, 3, 4, 5)]
    study = write_study(
        tmp_path,
        models,
        name=f"fi-{sig.name.lower()}",
        execution={"gap_between_experiments_s": GAP_S},
    )
    phases = list(PHASES)
    rng.shuffle(phases)
    pids: list[int] = []
    kept: Completed = {}
    for phase in phases:
        pids.append(_signal_round(client, study, sig, phase, rng))
        study_dir = the_study_dir(tmp_path)
        if study_dir is not None:
            assert_kept(study_dir, kept)
            kept = completed(study_dir)
    final = llem("run", str(study), "--resume", cwd=tmp_path, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    study_dir = the_study_dir(tmp_path)
    assert study_dir is not None
    assert_exactly_the_plan(study_dir, kept)
    assert _owned_by(client, pids) == [] and _of_study(client, study_dir) == []


def test_the_engine_restarted_under_a_run_then_resume_completes_exactly_the_plan(
    tmp_path, second_engine: SecondEngine
):
    study = write_study(tmp_path, ["fault:ok-1", "fault:ok-50", "fault:ok-2"], name="fi-engine")
    env = {**os.environ, "DOCKER_HOST": second_engine.url}
    run = Llem(study, env=env)
    try:
        assert _until(run, lambda: len(runs_started(_new_lines(tmp_path, 0))) == 2)
        time.sleep(1.0)  # inside the 5 s container
        second_engine.stop()
        engine = second_engine.start()  # restarted, as `systemctl restart docker`
        code, out = run.wait(timeout=120)
    finally:
        run.end()
    assert code == 2, out
    print("  " + next(line for line in out.splitlines() if "error:" in line))
    assert out.count("error:") == 1 and "Docker engine stopped answering" in out, out
    assert "Traceback" not in out
    study_dir = the_study_dir(tmp_path)
    assert study_dir is not None
    kept = completed(study_dir)
    assert len(kept) == 1  # the first run's result is kept
    # the daemon stopped the second run's container and kept it; nothing of llem's removed it
    assert engine.containers.list(all=True, filters={"label": "llem.owner_pid"}) != []
    final = llem("run", str(study), "--resume", cwd=tmp_path, env=env, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    assert_exactly_the_plan(study_dir, kept)
    # found by its label and removed
    assert engine.containers.list(all=True, filters={"label": "llem.owner_pid"}) == []


def _mount_tmpfs(folder: Path, size: str) -> None:
    """A tmpfs of `size` at `folder`; the test skips, saying why, where mounting is refused."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        why = mounted.stderr.strip()
        if os.geteuid() != 0 or "permission denied" in why.lower() or "superuser" in why:
            print(f"SKIP: mounting a tmpfs is not permitted here: {why}")
            pytest.skip(f"mounting a tmpfs is not permitted here: {why}")
        pytest.fail(f"mount -t tmpfs failed: {why}")


def _fill(folder: Path) -> Path:
    """Write into `folder` until its filesystem is full."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


@pytest.mark.parametrize("when", ["in a run", "in a gap"])
def test_a_full_disk_under_the_study_names_the_file_then_resume_completes(
    tmp_path, client, fault_image, when
):
    out = tmp_path / "out"
    out.mkdir()
    _mount_tmpfs(out, "4m")
    run = None
    try:
        models, gap = ["fault:ok-1", "fault:ok-30", "fault:ok-2"], 0.0
        if when == "in a gap":
            models, gap = ["fault:ok-1", "fault:ok-2", "fault:ok-2"], 2.0
        study = write_study(
            tmp_path, models, name="fi-disk", execution={"gap_between_experiments_s": gap}
        )
        run = Llem(study)
        if when == "in a run":  # the container finds it full; llem, as it collects the run
            assert _until(run, lambda: len(runs_started(_new_lines(tmp_path, 0))) == 2)
        else:  # llem finds it full, as it writes the next run's config.json
            assert _until(run, lambda: bool(completed(the_study_dir(tmp_path))))
        filler = _fill(out)
        code, said = run.wait(timeout=120)
        assert code == 2, said
        assert said.count("error:") == 1 and "Traceback" not in said, said
        print("  " + next(line for line in said.splitlines() if "error:" in line))
        named = re.search(r"No space left on device \(([^)]+)\)", said)
        assert named is not None and Path(named.group(1)).is_relative_to(out), said
        assert "free disk space" in said and "--resume" in said, said
        study_dir = the_study_dir(tmp_path)
        assert study_dir is not None
        assert _of_study(client, study_dir) == []  # its container stopped before llem ended
        kept = completed(study_dir)  # the manifest loads
        filler.unlink()  # space freed
        final = llem("run", str(study), "--resume", cwd=tmp_path, timeout=300)
        assert final.returncode == 0, final.stdout + final.stderr
        assert_exactly_the_plan(study_dir, kept)
        assert _of_study(client, study_dir) == [] and _owned_by(client, [run.proc.pid]) == []
    finally:
        if run is not None:
            run.end()
            for name in _owned_by(client, [run.proc.pid]):  # a failed test's leftovers only
                client.containers.get(name).remove(force=True)
        subprocess.run(["umount", "-l", str(out)], check=False)


def test_a_second_llem_on_the_same_study_is_refused_and_changes_nothing(
    tmp_path, client, fault_image
):
    study = write_study(tmp_path, ["fault:ok-1", "fault:ok-80", "fault:ok-1"], name="fi-second")
    first = Llem(study)
    try:
        assert _until(first, lambda: len(runs_started(_new_lines(tmp_path, 0))) == 2)
        study_dir = the_study_dir(tmp_path)
        assert study_dir is not None
        manifest = (study_dir / "manifest.jsonl").read_bytes()
        names = sorted(p.name for p in study_dir.iterdir())
        second = llem("run", str(study), "--resume", cwd=tmp_path, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        assert second.stderr.count("error:") == 1 and "Traceback" not in second.stderr
        assert f"(pid {first.proc.pid})" in second.stderr, second.stderr  # names the holder
        status = llem("status", str(study_dir), "--json", cwd=tmp_path, timeout=60)
        assert status.returncode == 0, status.stderr
        assert '"status": "running"' in status.stdout
        # the first is inside its 8 s run: nothing but the second could have written
        assert (study_dir / "manifest.jsonl").read_bytes() == manifest
        assert sorted(p.name for p in study_dir.iterdir()) == names
        assert the_study_dir(tmp_path) == study_dir
        code, out = first.wait(timeout=120)
    finally:
        first.end()
    assert code == 0, out
    assert_exactly_the_plan(study_dir, {})
    assert _of_study(client, study_dir) == []
