"""Per-run overhead of the Slurm executor, and the submission time of a large study.

1. Pairs, alternating: a one-run study through `llem run --executor slurm` (the shared-path
   probe off, as for a study whose paths were probed before) vs a bare `sbatch --wait
   --exclusive` of the same container (`docker run` of the fault image on a copy of that run's
   config.json). Per-run overhead is compared as "from submission until the submitter holds the
   outcome": for llem the run's span in the manifest (submitted -> collected: the node's llem,
   the container, llem following the job), for the bare job its submit-to-end time in
   accounting (1 s resolution: what an attentive waiter would see). Also printed: the whole
   `llem run` command (plus plan, pre-flight and the study's output tables, once per study)
   against the wall time of `sbatch --wait` (which polls with a growing interval and so often
   sees the end late). Target: median per-run ratio <= 1.10.
2. A study of --submit-runs runs (one configuration, that many cycles) with `--detach`: the
   wall time of the whole `llem run` (plan, pre-flight, 1000 work folders, one sbatch array),
   then every job cancelled. Target <= 10 s.

Needs a Slurm cluster whose nodes reach this host's Docker engine and folders (the one-node
cluster of `bash scripts/slurm-local`) and the fault image (`llem-test/fault:latest`, built by
the test suite).

    python benchmarks/slurm_overhead.py [--pairs 20] [--run-s 10] [--submit-runs 1000]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ruamel.yaml import YAML

from llenergymeasure.study.manifest import load_manifest

LLEM = str(Path(sys.executable).parent / "llem")
FAULT_IMAGE = "llem-test/fault:latest"
PARTITION = "llem"


def study(folder: Path, name: str, runs: int, run_s: float) -> Path:
    path = folder / f"{name}.yaml"
    document = {
        "name": name,
        "output_dir": "out",
        "offline": True,
        "images": {"pytorch": FAULT_IMAGE},
        "gpu_count": 0,
        "precision": "fp32",
        "model": f"fault:ok-{int(run_s * 10)}",
        "execution": {
            "executor": "slurm",
            "slurm": {"partition": PARTITION, "probe_paths": False},
            "n_cycles": runs,
            "gap_between_experiments_s": 0,
            "gap_between_cycles_s": 0,
            "experiment_timeout_s": 600,
        },
    }
    with open(path, "w") as handle:
        YAML().dump(document, handle)
    return path


def timed(argv: list[str], cwd: Path, job_id_to: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if job_id_to is not None:  # sbatch --parsable prints the job id
        job_id_to.write_text(proc.stdout.split(";")[0].strip())
    return elapsed


def bare_sbatch(workdir: Path) -> list[str]:
    container = [
        *("docker", "run", "--rm", "--network", "none", "-u", "10001:10001"),
        *("-v", f"{workdir}:/llem/work", FAULT_IMAGE),
    ]
    return [
        *("sbatch", "--parsable", "--wait", "--exclusive", f"--partition={PARTITION}"),
        f"--output={workdir}/bare.out",
        f"--wrap=exec {shlex.join(container)}",
    ]


def overhead(folder: Path, pairs: int, run_s: float) -> None:
    path = study(folder, "overhead", 1, run_s)
    rows = []
    for k in range(pairs):
        llem_s = timed([LLEM, "run", str(path), "--yes"], folder)
        study_dir = sorted((folder / "out").glob("overhead_*"))[-1]
        (run,) = load_manifest(study_dir).runs.values()
        span_s = (
            datetime.fromisoformat(run.finished_at) - datetime.fromisoformat(run.started_at)
        ).total_seconds()
        workdir = study_dir / "experiments" / run.run_id
        bare = folder / f"bare-{k}"
        bare.mkdir()
        shutil.copy(workdir / "config.json", bare / "config.json")
        shutil.chown(bare, 10001, 10001)
        bare_s = timed(bare_sbatch(bare), folder, job_id_to=bare / "job_id")
        if not (bare / "result.json").is_file():
            raise SystemExit(f"the bare container wrote no result: {bare}")
        slurm_s = submit_to_end_s(bare)
        rows.append((span_s / slurm_s, llem_s / bare_s, span_s - slurm_s))
        print(
            f"pair {k + 1:2d}: llem run span {span_s:5.2f} s (command {llem_s:5.2f} s)   "
            f"bare submit-to-end {slurm_s:4.1f} s (sbatch --wait {bare_s:5.2f} s)   "
            f"ratios {rows[-1][0]:.3f} ({rows[-1][1]:.3f})",
            flush=True,
        )
    print(
        f"median over {pairs} pairs of {run_s:g} s runs: per-run ratio "
        f"{statistics.median(r[0] for r in rows):.3f} (target <= 1.10), per-run overhead "
        f"{statistics.median(r[2] for r in rows):+.2f} s; whole command / sbatch --wait "
        f"{statistics.median(r[1] for r in rows):.3f}"
    )


def submit_to_end_s(bare: Path) -> float:
    """End - Submit of the bare job (sacct, whole seconds), once accounting has its end."""
    job_id = (bare / "job_id").read_text().strip()
    for _ in range(100):
        out = (
            subprocess.run(
                ["sacct", "-X", "-n", "-P", "-j", job_id, "--format", "Submit,End"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split("|")
        )
        if len(out) == 2 and out[1] not in ("", "Unknown"):
            submit, end = (datetime.fromisoformat(t) for t in out)
            return (end - submit).total_seconds()
        time.sleep(0.2)
    raise SystemExit(f"accounting never recorded the end of job {job_id}")


def submission(folder: Path, runs: int) -> None:
    path = study(folder, "submit", runs, 0.1)
    try:
        elapsed = timed([LLEM, "run", str(path), "--detach", "--yes"], folder)
    finally:
        subprocess.run(["scancel", f"--name=llem.{_study_id(folder, 'submit')}.b0001"], check=False)
    print(
        f"submission of a {runs}-run study (`llem run --detach`, whole command): "
        f"{elapsed:.2f} s (target <= 10 s)"
    )


def _study_id(folder: Path, name: str) -> str:
    return next(p.name for p in sorted((folder / "out").iterdir()) if p.name.startswith(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--run-s", type=float, default=10.0)
    parser.add_argument("--submit-runs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llem-slurm-bench-") as tmp:
        folder = Path(tmp)
        (folder / "out").mkdir()
        submission(folder, args.submit_runs)
        if args.pairs:
            overhead(folder, args.pairs, args.run_s)


if __name__ == "__main__":
    main()
