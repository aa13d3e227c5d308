"""Wall time of the same study with one run at a time vs several (`execution.max_parallel`).

8 equal runs of the fault test image (`fault:ok-20`: 2 s of progress, then a result), no gaps,
CPU slots (gpu_count 0). The parallel arm uses max_parallel = min(--parallel, the host's CPUs):
runs with gpu_count 0 get CPUs of their own, so a 2-core host runs at most 2 at once. Each arm is
a whole `llem run` (pre-flight included), alternating, --rounds times; printed: each wall time and
the median ratio serial / parallel. Target >= 3.6x at max_parallel 4.

Needs the engine and the fault image (`llem-test/fault:latest`, built by the test suite:
`bash scripts/test tests/integration/test_orchestrator_faults.py`).

    python benchmarks/parallel_speedup.py [--parallel 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
from ruamel.yaml import YAML

LLEM = str(Path(sys.executable).parent / "llem")
FAULT_IMAGE = "llem-test/fault:latest"


def study(folder: Path, parallel: int) -> Path:
    path = folder / f"p{parallel}.yaml"
    document = {
        "name": f"speedup-{parallel}",
        "output_dir": "out",
        "offline": True,
        "images": {"pytorch": FAULT_IMAGE},
        "gpu_count": 0,
        "precision": "fp32",
        "experiments": [{"model": "fault:ok-20"} for _ in range(8)],
        "execution": {
            "max_parallel": parallel,
            "gap_between_experiments_s": 0,
            "gap_between_cycles_s": 0,
            "experiment_timeout_s": 60,
        },
    }
    with open(path, "w") as handle:
        YAML().dump(document, handle)
    return path


def wall_time(path: Path, folder: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([LLEM, "run", str(path), "--yes"], cwd=folder, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"llem run failed:\n{proc.stdout.decode()[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        docker.from_env().images.get(FAULT_IMAGE)
    except docker.errors.DockerException as error:
        raise SystemExit(f"{FAULT_IMAGE} is needed ({error}); the test suite builds it") from None
    parallel = min(args.parallel, len(os.sched_getaffinity(0)))
    ratios = []
    with tempfile.TemporaryDirectory(prefix="llem-speedup-") as tmp:
        folder = Path(tmp)
        serial_study, parallel_study = study(folder, 1), study(folder, parallel)
        for round_no in range(args.rounds):
            serial = wall_time(serial_study, folder)
            together = wall_time(parallel_study, folder)
            ratios.append(serial / together)
            print(
                f"round {round_no + 1}: max_parallel 1 {serial:.2f} s, max_parallel {parallel} "
                f"{together:.2f} s, speed-up {serial / together:.2f}x",
                flush=True,
            )
    print(f"median speed-up at max_parallel {parallel}: {statistics.median(ratios):.2f}x")
    if parallel < args.parallel:
        print(f"(this host has {parallel} CPUs: max_parallel {args.parallel} needs as many)")


if __name__ == "__main__":
    main()
