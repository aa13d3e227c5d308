"""The benchmarks run end to end: the container-side ones on the tiny model (CPU here, no
Docker), the search's on its simulated executor; one that stopped working is found by the tests,
not on the machine it was kept for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_energy_repeatability_reports_every_run_and_the_spread(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
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
    pytest.importorskip("torch")
    proc = _bench(
        "benchmarks/harness_overhead.py", "--repeats", "1", "--window-s", "0.5",
        "--layers", "2", "--hidden", "128", "--prompts", "4",
    )  # fmt: skip
    ratio = float(proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert 0 < ratio < 10


def test_search_efficiency_reports_every_figure_in_range() -> None:
    """Two seeds of the whole search and of plain TPE on a shipped landscape: every figure the
    JSON promises, each within its possible range (the benchmark's targets are not asserted)."""
    proc = _bench(
        "benchmarks/search_efficiency.py", "--seeds", "2", "--json",
        "--landscape", "benchmarks/landscapes/vllm_precision_oom.py",
    )  # fmt: skip
    out = json.loads(proc.stdout)
    assert out["seeds"] == 2 and out["noise"] == 0.03
    figures = out["landscapes"]["vllm_precision_oom"]
    assert figures["seeds"] == {"first": 0, "last": 1, "count": 2}
    assert figures["grid"] == 240 and 0 < figures["within_5pct"] <= figures["feasible"] < 240
    runs, confirm = figures["runs"], figures["confirm_runs"]
    for spread in (runs, confirm):
        assert set(spread) == {"median", "p25", "p75", "p90", "max"}
        assert 0 <= spread["p25"] <= spread["median"] <= spread["p75"] <= spread["p90"]
        assert spread["p90"] <= spread["max"]
    assert 1 <= runs["max"] <= figures["search"]["trials"] * 3 and confirm["max"] < runs["max"]
    for share in (figures["winner_within"], figures["within_any"]):
        assert share in (0.0, 0.5, 1.0)
    assert sum(figures["verdicts"].values()) == 2
    assert set(figures["verdicts"]) >= {"winner", "equivalent", "no_clear_winner", "none"}
    tpe = figures["plain_tpe"]
    assert tpe["runs"] == runs  # the same runs per seed as the search made
    assert tpe["winner_within"] in (0.0, 0.5, 1.0) and tpe["within_any"] in (0.0, 0.5, 1.0)
    assert figures["wall_s"]["total"] > 0


def test_search_gpu_time_prices_every_variant_against_the_grid() -> None:
    """One seed on the 400-point landscape: each variant's GPU time is a share of the grid's,
    the shared baseline never costs more than none, the median pruner's search (the objective
    is reported per slice) is priced, and the warm start is counted."""
    proc = _bench(
        "benchmarks/search_gpu_time.py", "--seeds", "1",
        "--landscape", "benchmarks/landscapes/checks/smooth_2d.py",
    )  # fmt: skip
    assert "MODELLED GPU time" in proc.stdout
    row = proc.stdout.strip().splitlines()[-1].split()
    assert row[0] == "smooth_2d" and row[1] == "400"
    plain, baseline, pruning, both = (float(cell.rstrip("%")) for cell in row[2:6])
    assert 0 < baseline < plain < 100 and 0 < both <= pruning < 100
    median = float(row[8].rstrip("%"))  # after "prune saves" and "within off/on"
    assert 0 < median < 100 and row[9].endswith("%") and row[10].endswith("%")
    assert row[-3].endswith("%") and row[-2].endswith("%")  # warm start: same, as good
