"""RAPL sampled through a serving load, read from a powercap tree laid out as on a real host."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from llenergymeasure.energy.rapl import NO_SPAN, Rapl, RaplReading, RaplSampler

PACKAGE_WRAP_UJ = 20_000_000  # 20 J: wraps every 0.4 s at 50 W, several times in the test


def _zone(root: Path, name: str, label: str, wrap_uj: int) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text("0\n")
    (zone / "max_energy_range_uj").write_text(f"{wrap_uj}\n")
    return zone


def _write(path: Path, value: int) -> None:
    """Atomically, as sysfs reads are: a reader never sees a half-written file."""
    partial = path.with_suffix(".partial")
    partial.write_text(f"{value}\n")
    partial.replace(path)


def _tree(root: Path) -> tuple[Path, Path]:
    package = _zone(root, "intel-rapl:0", "package-0", PACKAGE_WRAP_UJ)
    _zone(root, "intel-rapl:0:0", "core", PACKAGE_WRAP_UJ)
    dram = _zone(root, "intel-rapl:0:1", "dram", 65_000_000_000)
    return package, dram


def test_sampled_counters_give_a_windows_energy_across_wraps(tmp_path: Path) -> None:
    """A writer draws 50 W on the package and 5 W on DRAM into `energy_uj` (wrapping the
    package counter) while the sampler reads the tree; any window inside the sampled span
    reads power x duration."""
    package, dram = _tree(tmp_path)
    stop = threading.Event()
    t0 = time.perf_counter()

    def draw() -> None:
        while not stop.is_set():
            elapsed = time.perf_counter() - t0
            _write(package / "energy_uj", int(50e6 * elapsed) % PACKAGE_WRAP_UJ)
            _write(dram / "energy_uj", int(5e6 * elapsed))
            time.sleep(0.001)

    writer = threading.Thread(target=draw, daemon=True)
    writer.start()
    sampler = RaplSampler(Rapl(tmp_path), interval_s=0.02)
    sampler.start()
    time.sleep(1.5)
    sampler.stop()
    stop.set()
    writer.join()
    start, end = sampler.readings[2][0] + 0.013, sampler.readings[-3][0] - 0.007
    package_j, dram_j = sampler.energy_between(start, end)
    assert package_j == pytest.approx(50 * (end - start), rel=0.05)
    assert dram_j == pytest.approx(5 * (end - start), rel=0.05)
    assert sampler.reasons(package_j, dram_j) == (None, None)


def test_edges_interpolate_between_readings_and_unwrap(tmp_path: Path) -> None:
    _tree(tmp_path)
    sampler = RaplSampler(Rapl(tmp_path), interval_s=1.0)
    # package: 19 J, then 1 J after a wrap at 20 J (2 J in that second), then 3 J
    sampler.readings = [
        (10.0, RaplReading([19e6], [0.0])),
        (11.0, RaplReading([1e6], [1e6])),
        (12.0, RaplReading([3e6], [2e6])),
    ]
    package_j, dram_j = sampler.energy_between(10.5, 11.5)
    assert package_j == pytest.approx(2.0)  # half of each 2 J second
    assert dram_j == pytest.approx(1.0)


def test_a_window_outside_the_samples_is_null_with_its_reason(tmp_path: Path) -> None:
    _tree(tmp_path)
    sampler = RaplSampler(Rapl(tmp_path), interval_s=1.0)
    sampler.readings = [(10.0, RaplReading([0.0], [0.0])), (11.0, RaplReading([1e6], [1e6]))]
    values = sampler.energy_between(9.0, 10.5)
    assert values == (None, None)
    assert sampler.reasons(*values) == (NO_SPAN, NO_SPAN)


def test_no_powercap_gives_the_discovery_reason_and_no_thread(tmp_path: Path) -> None:
    sampler = RaplSampler(Rapl(tmp_path / "absent"), interval_s=0.01)
    sampler.start()
    sampler.stop()
    assert sampler.readings == []
    package_why, dram_why = sampler.reasons(*sampler.energy_between(0.0, 1.0))
    assert "does not exist" in (package_why or "") and "does not exist" in (dram_why or "")
