"""The container-side benchmarks run end to end on the tiny model (CPU here, no Docker): one
that stopped working is found by the tests, not on the GPU machine it was kept for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_energy_repeatability_reports_every_run_and_the_spread(tmp_path: Path) -> None:
    found = tmp_path / "figures.json"
    proc = _bench(
        "benchmarks/energy_repeatability.py", "--repeats", "2", "--power-limits", "auto",
        "--window-s", "1", "--json", str(found),
    )  # fmt: skip
    runs = json.loads(found.read_text())["repeats"]
    assert [run["label"] for run in runs] == ["repeat 1", "repeat 2"]
    assert all(run["tokens_per_s"] > 0 and run["window_s"] >= 1.0 for run in runs)
    assert "output tok/s: mean" in proc.stdout
    if not torch.cuda.is_available():
        # nothing measured is reported as measured: null energy with its reason, no sweep
        assert all(run["j_per_token"] is None and run["energy_reason"] for run in runs)
        assert "J/output token: n/a (0 of 2 runs measured it)" in proc.stdout
        assert "power-limit sweep not run" in proc.stdout


def test_harness_overhead_compares_against_a_bare_loop() -> None:
    proc = _bench(
        "benchmarks/harness_overhead.py", "--repeats", "1", "--window-s", "0.5",
        "--layers", "2", "--hidden", "128", "--prompts", "4",
    )  # fmt: skip
    ratio = float(proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert 0 < ratio < 10
