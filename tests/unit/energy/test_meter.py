"""EnergyMeter over recorded NVML sequences (multi-GPU counter, reset fallback) and RAPL files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llenergymeasure.device import throttle_names
from llenergymeasure.energy import meter as meter_module
from llenergymeasure.energy.gpus import GpuSample
from llenergymeasure.energy.meter import EnergyMeter
from llenergymeasure.energy.rapl import Rapl
from llenergymeasure.energy.sampler import PowerSampler, Row, write_parquet


class RecordedCounters:
    """Replays recorded per-GPU total-energy counter readings (mJ), one list per read."""

    def __init__(self, readings: list[list[float] | None]) -> None:
        self._readings: Iterator[list[float] | None] = iter(readings)
        self.counter_reason: str | None = None  # as MeteredGpus: why a None reading has no counter

    def energy_counters_mj(self) -> list[float] | None:
        return next(self._readings)


def _no_rapl(tmp_path: Path) -> Rapl:
    return Rapl(tmp_path / "absent")


def _sample(power: float | None, temp: float = 40.0) -> GpuSample:
    return GpuSample(power, temp, 1_500.0, 90.0, 1_000.0, 0)


def test_counter_window_sums_gpus(tmp_path: Path) -> None:
    counters = RecordedCounters([[1_000.0, 5_000.0], [201_000.0, 305_000.0]])
    meter = EnergyMeter(counters, None, None, _no_rapl(tmp_path), [0, 1])  # type: ignore[arg-type]
    meter.begin("window")
    reading = meter.end("window")
    assert reading.gpu_source == "nvml_energy_counter"
    assert reading.per_gpu_j == [200.0, 300.0]
    assert reading.gpu_j == 500.0
    assert reading.cpu_package_j is None and reading.cpu_package_reason


def test_counter_reset_falls_back_to_power_integral(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = RecordedCounters([[9_000_000.0], [500.0]])
    sampler = PowerSampler(lambda: [], [0])
    # Recorded samples at 0.0..1.0 s of a constant 250 W GPU; the window is [0.2, 0.8].
    sampler.rows = [Row(k / 10, 0.0, "window", 0, _sample(250.0)) for k in range(11)]
    monkeypatch.setattr(sampler, "set_phase", lambda phase: None)
    clock = iter([0.2, 0.8])
    monkeypatch.setattr(meter_module.time, "perf_counter", lambda: next(clock))
    meter = EnergyMeter(counters, None, sampler, _no_rapl(tmp_path), [0])  # type: ignore[arg-type]
    meter.begin("window")
    reading = meter.end("window")
    assert reading.gpu_source == "nvml_power_integral"
    assert reading.gpu_j == pytest.approx(150.0)


def test_no_counter_and_no_spanning_samples_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = RecordedCounters([None, None])
    sampler = PowerSampler(lambda: [], [0])
    monkeypatch.setattr(sampler, "set_phase", lambda phase: None)
    meter = EnergyMeter(counters, None, sampler, _no_rapl(tmp_path), [0])  # type: ignore[arg-type]
    meter.begin("window")
    reading = meter.end("window")
    assert reading.gpu_source == "unavailable"
    assert reading.gpu_j is None
    assert "no NVML total-energy counter" in (reading.gpu_reason or "")


def test_no_nvml_gives_its_reason(tmp_path: Path) -> None:
    meter = EnergyMeter(None, "gpu_count is 0", None, _no_rapl(tmp_path), [])
    meter.begin("w")
    reading = meter.end("w")
    assert (reading.gpu_source, reading.gpu_j, reading.gpu_reason) == (
        "unavailable",
        None,
        "gpu_count is 0",
    )


def _zone(root: Path, name: str, label: str, energy: int, wrap: int) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{wrap}\n")
    return zone


def test_rapl_package_and_dram_with_wrap(tmp_path: Path) -> None:
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 999_000_000, 1_000_000_000)
    dram = _zone(tmp_path, "intel-rapl:0:1", "dram", 10_000_000, 65_000_000_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 5, 1_000_000_000)
    rapl = Rapl(tmp_path)
    assert len(rapl.packages) == 1 and len(rapl.drams) == 1
    start = rapl.read()
    (pkg / "energy_uj").write_text("4000000\n")  # wrapped: 1 J + 4 J
    (dram / "energy_uj").write_text("12500000\n")
    package_j, dram_j = rapl.energy_j(start, rapl.read())
    assert package_j == pytest.approx(5.0)
    assert dram_j == pytest.approx(2.5)


def test_rapl_absent_gives_reason(tmp_path: Path) -> None:
    rapl = Rapl(tmp_path / "nope")
    assert not rapl.packages
    assert "does not exist" in (rapl.package_reason or "")


def test_sampler_phases_and_parquet(tmp_path: Path) -> None:
    readings = iter([[_sample(100.0 + k, 40.0 + k)] for k in range(1_000)])
    sampler = PowerSampler(lambda: next(readings), [3], interval_s=0.01)
    sampler.start()
    sampler.set_phase("window")
    time.sleep(0.1)
    sampler.set_phase("between")
    sampler.stop()
    phases = {r.phase for r in sampler.rows}
    assert {"idle", "window", "between"} <= phases
    window = [r for r in sampler.rows if r.phase == "window"]
    assert len(window) >= 5  # ~10 at 10 ms; loose for a loaded machine
    times = [r.t_s for r in sampler.rows]
    assert times == sorted(times)
    path = tmp_path / "timeseries.parquet"
    write_parquet(sampler.rows, path)
    table = pq.read_table(path).to_pydict()
    assert table["gpu"][0] == 3
    assert table["power_w"][:2] == [100.0, 101.0]
    assert set(table) >= {"power_w", "temperature_c", "sm_clock_mhz", "throttle_reasons"}


def test_throttle_bits_decode() -> None:
    assert throttle_names(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
    assert throttle_names(0) == []
