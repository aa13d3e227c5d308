"""A background thread sampling every GPU at a fixed period: the timeline and the fallback
integral when the total-energy counter is missing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.contract.workdir import (
    TIMESERIES_GPU,
    TIMESERIES_PHASE,
    TIMESERIES_POWER,
    TIMESERIES_TEMPERATURE,
    TIMESERIES_TIME,
)
from llenergymeasure.device import throttle_names
from llenergymeasure.energy.gpus import PERFORMANCE_THROTTLES, GpuSample
from llenergymeasure.energy.periodic import Periodic

DEFAULT_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Row:
    t_s: float  # time.perf_counter(), the protocol's clock
    unix_s: float
    phase: str
    gpu: int
    sample: GpuSample


class PowerSampler(Periodic):
    """Calls `read()` every `interval_s` on a daemon thread, tagging rows with the current phase."""

    def __init__(
        self,
        read: Callable[[], Sequence[GpuSample]],
        gpu_indices: Sequence[int],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        super().__init__(interval_s, "llem-power-sampler")
        self._read = read
        self._gpus = list(gpu_indices)
        self.phase = "idle"
        self.rows: list[Row] = []

    def set_phase(self, phase: str) -> None:
        """Mark the boundary with a sample of its own, so each phase's integral is bracketed."""
        self._take()
        self.phase = phase
        self._take()

    def _take(self) -> None:
        t, unix = time.perf_counter(), time.time()
        phase = self.phase
        for gpu, sample in zip(self._gpus, self._read(), strict=True):
            self.rows.append(Row(t, unix, phase, gpu, sample))

    def series(self, gpu: int, start_s: float, end_s: float) -> list[Row]:
        """This GPU's rows from the last one at or before start_s to the first at or after end_s."""
        rows = [r for r in self.rows if r.gpu == gpu]
        before = [r for r in rows if r.t_s <= start_s]
        after = [r for r in rows if r.t_s >= end_s]
        inside = [r for r in rows if start_s < r.t_s < end_s]
        return before[-1:] + inside + after[:1]


def rows_by_gpu(rows: Sequence[Row]) -> dict[int, list[Row]]:
    """Each GPU's rows, in the order given."""
    grouped: dict[int, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.gpu, []).append(row)
    return grouped


def temperatures_by_gpu(rows: Sequence[Row]) -> dict[int, list[float]]:
    """Each GPU's temperature readings, in time order; a GPU without any is left out."""
    found = {
        gpu: [r.sample.temperature_c for r in mine if r.sample.temperature_c is not None]
        for gpu, mine in rows_by_gpu(rows).items()
    }
    return {gpu: temps for gpu, temps in found.items() if temps}


def temperature_rise_c(rows: Sequence[Row], since_s: float) -> float | None:
    """The largest rise of any GPU's temperature from its first reading at or after `since_s`
    to its last; None where a GPU has fewer than two readings there (or none reports one)."""
    recent = temperatures_by_gpu([r for r in rows if r.t_s >= since_s])
    gpus = {r.gpu for r in rows}
    if not recent or set(recent) != gpus or any(len(t) < 2 for t in recent.values()):
        return None
    return max(temps[-1] - temps[0] for temps in recent.values())


def performance_throttles(rows: Sequence[Row]) -> list[str]:
    """The throttle reasons seen in `rows` that slowed the work (power, thermal, hardware)."""
    return sorted(
        {
            name
            for r in rows
            if r.sample.throttle_bitmask is not None
            for name in throttle_names(r.sample.throttle_bitmask)
            if name in PERFORMANCE_THROTTLES
        }
    )


def write_parquet(rows: Sequence[Row], path: Path) -> None:
    """One row per GPU per sample; units in column names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            TIMESERIES_TIME: pa.array([r.t_s for r in rows], pa.float64()),
            "unix_s": pa.array([r.unix_s for r in rows], pa.float64()),
            TIMESERIES_PHASE: pa.array([r.phase for r in rows], pa.string()),
            TIMESERIES_GPU: pa.array([r.gpu for r in rows], pa.int32()),
            TIMESERIES_POWER: pa.array([r.sample.power_w for r in rows], pa.float64()),
            TIMESERIES_TEMPERATURE: pa.array([r.sample.temperature_c for r in rows], pa.float64()),
            "sm_clock_mhz": pa.array([r.sample.sm_clock_mhz for r in rows], pa.float64()),
            "utilisation_pct": pa.array([r.sample.utilisation_pct for r in rows], pa.float64()),
            "memory_used_mb": pa.array([r.sample.memory_used_mb for r in rows], pa.float64()),
            "throttle_reasons": pa.array(
                [
                    ",".join(throttle_names(r.sample.throttle_bitmask))
                    if r.sample.throttle_bitmask is not None
                    else None
                    for r in rows
                ],
                pa.string(),
            ),
        }
    )
    pq.write_table(table, path)
