"""The serving run's Parquet files in the work folder: one row per request, energy and load per
time slice, the server's gauges. Each has a `stage` column; times are s since that stage's
sending began (units in the column names)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.experiment.serving import figures
from llenergymeasure.experiment.serving.stage import StageRun

# (GPU J, CPU package J, DRAM J) between two perf_counter times
CutEnergy = Callable[[float, float], tuple[float | None, float | None, float | None]]


def write_requests(stages: Sequence[StageRun], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(stage, r) for stage in stages for r in stage.records]
    records = [r for _, r in rows]
    table = pa.table(
        {
            "stage": pa.array([stage.index for stage, _ in rows], pa.int32()),
            "index": pa.array([r.index for r in records], pa.int32()),
            "warmup": pa.array([r.warmup for r in records], pa.bool_()),
            "scheduled_s": pa.array([r.scheduled_s for r in records], pa.float64()),
            "sent_s": pa.array([r.sent_s for r in records], pa.float64()),
            "send_lag_s": pa.array([r.send_lag_s for r in records], pa.float64()),
            "first_token_s": pa.array(
                [r.token_times_s[0] if r.token_times_s else None for r in records], pa.float64()
            ),
            "end_s": pa.array([r.end_s for r in records], pa.float64()),
            "prompt_index": pa.array([r.prompt for r in records], pa.int32()),
            "session": pa.array([r.session for r in records], pa.int32()),
            "turn": pa.array([r.turn for r in records], pa.int32()),
            "input_tokens": pa.array([r.input_tokens for r in records], pa.int32()),
            "requested_output_tokens": pa.array([r.max_tokens for r in records], pa.int32()),
            "output_tokens": pa.array([r.output_tokens for r in records], pa.int32()),
            "ttft_ms": pa.array([_ms(r.ttft_s) for r in records], pa.float64()),
            "tpot_ms": pa.array([_ms(r.tpot_s) for r in records], pa.float64()),
            "e2e_ms": pa.array([_ms(r.e2e_s) for r in records], pa.float64()),
            "token_times_s": pa.array([r.token_times_s for r in records], pa.list_(pa.float64())),
            "slo_met": pa.array(
                [figures.meets_slo(r, stage.serving.slo) for stage, r in rows], pa.bool_()
            ),
            "error": pa.array([r.error for r in records], pa.string()),
        }
    )
    pq.write_table(table, path)


def write_slices(stages: Sequence[StageRun], path: Path, energy: CutEnergy) -> None:
    """Each stage cut into slices of its slice_s, from its first send to its last answer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[float | int | None]] = {
        name: []
        for name in (
            "stage",
            "start_s",
            "end_s",
            "gpu_j",
            "cpu_package_j",
            "dram_j",
            "output_tokens",
            "requests_sent",
        )
    }
    for stage in stages:
        records = stage.records
        end = max([r.end_s or 0.0 for r in records] + [0.0])
        for a, b in figures.slices(end, stage.serving.slice_s):
            gpu, package, dram = energy(stage.zero + a, stage.zero + b)
            sent = sum(1 for r in records if r.sent_s is not None and a <= r.sent_s < b)
            values = {
                "stage": stage.index,
                "start_s": a,
                "end_s": b,
                "gpu_j": gpu,
                "cpu_package_j": package,
                "dram_j": dram,
                "output_tokens": sum(figures.tokens_in(r, a, b) for r in records),
                "requests_sent": sent,
            }
            for name, value in values.items():
                columns[name].append(value)
    types = {"stage": pa.int32(), "requests_sent": pa.int32()}
    table = pa.table(
        {name: pa.array(values, types.get(name, pa.float64())) for name, values in columns.items()}
    )
    pq.write_table(table, path)


def write_server_metrics(
    stages: Sequence[StageRun], rows: list[tuple[float, str, float]], path: Path
) -> str | None:
    """The scraped gauges (times since the first stage began), each under the stage it came
    after the start of; None when the server exposed none."""
    if not rows or not stages:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    def stage_at(t: float) -> StageRun:
        return next((s for s in reversed(stages) if s.began_s <= t), stages[0])

    owners = [stage_at(t) for t, _, _ in rows]
    table = pa.table(
        {
            "stage": pa.array([s.index for s in owners], pa.int32()),
            "t_s": pa.array([t - s.began_s for (t, _, _), s in zip(rows, owners, strict=True)]),
            "metric": pa.array([m for _, m, _ in rows], pa.string()),
            "value": pa.array([v for _, _, v in rows], pa.float64()),
        }
    )
    pq.write_table(table, path)
    return WorkPaths.SERVER_METRICS


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
