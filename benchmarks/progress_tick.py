"""Cost of one live-view refresh while a run writes progress, at 10^2, 10^4, 10^5 events.

A run's `progress.jsonl` already holds N events; each tick one more is appended and the display
refreshes (`Display.refresh(force=True)`: the incremental `ProgressTail` read and the view's
update). Printed: the median over 200 ticks, next to re-parsing the whole file each tick (what
a reader without an offset pays). Target: <= 1 ms per tick at 10^4 events.

    python benchmarks/progress_tick.py
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.workdir import (
    ProgressEvent,
    WorkPaths,
    append_jsonl,
    run_dir_name,
)
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.work_files import read_progress

TICKS = 200


def fill(path: Path, n: int) -> None:
    line = ProgressEvent(event="batch", i=1, n=10, detail="pass 1").model_dump_json() + "\n"
    path.write_text(line * n)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    run = PlannedRun(
        run_index=0,
        run_id=run_dir_name(0, "0" * 64, 0),
        config_hash="0" * 64,
        config_index=0,
        cycle=0,
        config=ExperimentConfig(model="m", gpu_count=0),
    )
    event = ProgressEvent(event="batch", i=2, n=10, detail="pass 1")
    for n in (10**2, 10**4, 10**5):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            fill(work / WorkPaths.PROGRESS, n)
            # a terminal console into a buffer: the live view's path, drawn nowhere
            display = Display(Console(file=io.StringIO(), force_terminal=True))
            display.start(1, 0)
            display.run_started(run, 1, 1, work)
            display.refresh(force=True)  # the first read takes what was already written
            ticks, whole = [], []
            for _ in range(TICKS):
                append_jsonl(work / WorkPaths.PROGRESS, event)
                start = time.perf_counter()
                display.refresh(force=True)
                ticks.append(time.perf_counter() - start)
            for _ in range(min(TICKS, 20)):
                start = time.perf_counter()
                read_progress(work / WorkPaths.PROGRESS)
                whole.append(time.perf_counter() - start)
            display.stop()
        print(
            f"{n:>7} events: {median_ms(ticks):.3f} ms per tick "
            f"(re-parsing the whole file: {median_ms(whole):.1f} ms)"
        )


if __name__ == "__main__":
    main()
