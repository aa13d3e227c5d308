"""Manifest transition cost at 10^2, 10^4 and 10^5 entries: should stay flat.

For each size, a journal is created with that many runs, then 200 transitions are timed
(update_run: validate + one fsync'd append). Prints the median per transition (ms, wall clock
via time.perf_counter) and the ratio of the largest to the smallest. Target: <= 1.5x.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord

SIZES = (10**2, 10**4, 10**5)
TRANSITIONS = 200


def measure(size: int) -> float:
    runs = {
        f"{i:06d}_abcdef01_c0": RunRecord(
            run_id=f"{i:06d}_abcdef01_c0",
            run_index=i,
            config_hash="ab" * 32,
            cycle=0,
            backend="pytorch",
        )
        for i in range(size)
    }
    record = StudyRecord(
        study_id="s",
        study_name="s",
        design_hash="d" * 64,
        created_at="",
        llem_version="0",
        runs=runs,
    )
    with tempfile.TemporaryDirectory() as tmp, Manifest.create(Path(tmp), record) as manifest:
        ids = list(runs)
        times = []
        for k in range(TRANSITIONS):
            run_id = ids[(k * 7919) % size]
            start = time.perf_counter()
            manifest.update_run(run_id, status="running", attempts=1)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    results = {size: measure(size) for size in SIZES}
    for size, ms in results.items():
        print(f"{size:>7} entries: median {ms:.3f} ms per transition ({TRANSITIONS} timed)")
    print(f"largest/smallest: {results[SIZES[-1]] / results[SIZES[0]]:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
