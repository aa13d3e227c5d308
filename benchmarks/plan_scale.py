"""How planning scales: load + expand + validate studies of 10^2 .. 10^5 runs.

    python benchmarks/plan_scale.py [--sizes 100 1000 10000 100000] [--repeat 3]

Two shapes per size: every run a distinct configuration (1 cycle: the worst case, one
validation and one hash per run), and a tenth as many configurations over 10 cycles. Prints the
best of --repeat wall-clock timings (time.perf_counter), the process CPU time of that repeat
(time.process_time; less sensitive to other load on the machine), runs per second and
microseconds per run, which stays flat when the cost grows linearly. Then the command line end
to end: `llem plan --json` of the all-distinct study at each size of 10^3 or more, as a fresh
process (interpreter start, imports, load, expand, the JSON written), wall clock, best of
--repeat. Target: <= 5 s at 10^5.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llenergymeasure.config.loader import load_study
from llenergymeasure.study import expand

VALUES_PER_DIMENSION = 10
LLEM = str(Path(sys.executable).parent / "llem")


def study_text(n_configs: int, n_cycles: int) -> str:
    """A study of n_configs distinct configurations: n_prompts x max_new_tokens."""
    prompts = list(range(1, n_configs // VALUES_PER_DIMENSION + 1))
    tokens = [8 * (i + 1) for i in range(VALUES_PER_DIMENSION)]
    return (
        "name: scale\nmodel: some/model\n"
        f"sweep:\n  n_prompts: {prompts}\n  max_new_tokens: {tokens}\n"
        f"execution: {{n_cycles: {n_cycles}}}\n"
    )


def measure(path: Path, runs_expected: int, repeat: int) -> tuple[float, float]:
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        plan = expand(load_study(path))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert len(plan.runs) == runs_expected, (len(plan.runs), runs_expected)
        best = min(best, (wall, cpu))
        del plan
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(
        f"{'runs':>8} {'configs':>8} {'cycles':>6} {'wall s':>8} {'cpu s':>8} "
        f"{'runs/s':>9} {'us/run':>7}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            shapes = [(size, 1)]
            if size >= 10 * VALUES_PER_DIMENSION:
                shapes.append((size // 10, 10))
            for n_configs, n_cycles in shapes:
                path = Path(folder) / f"scale-{n_configs}-{n_cycles}.yaml"
                path.write_text(study_text(n_configs, n_cycles))
                wall, cpu = measure(path, n_configs * n_cycles, args.repeat)
                runs = n_configs * n_cycles
                print(
                    f"{runs:>8} {n_configs:>8} {n_cycles:>6} {wall:>8.3f} {cpu:>8.3f} "
                    f"{runs / wall:>9.0f} {wall / runs * 1e6:>7.1f}",
                    flush=True,
                )
        print(f"\n{'runs':>8} {'llem plan --json, s':>20} {'JSON MB':>8}")
        for size in (s for s in args.sizes if s >= 1000):
            path = Path(folder) / f"scale-{size}-1.yaml"
            best, size_mb = float("inf"), 0.0
            for _ in range(args.repeat):
                start = time.perf_counter()
                proc = subprocess.run([LLEM, "plan", str(path), "--json"], capture_output=True)
                best = min(best, time.perf_counter() - start)
                assert proc.returncode == 0, proc.stderr.decode()[-2000:]
                size_mb = len(proc.stdout) / 1e6
            print(f"{size:>8} {best:>20.2f} {size_mb:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
