"""`--valid-only` means one thing in `results show`, `results compare` and the library: the runs
whose GPU energy was read and judged not valid are left out, and runs without a reading stay
(`results.validity`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_llem as llem
from helpers.results import Figures, cpu_study, pytorch_config, write_study

TOK_S = "throughput.output_tokens_per_s"
J_TOKEN = "energy.j_per_output_token"


def show(study: Path, *flags: str) -> dict[int, dict]:
    code, out, err = llem("results", "show", str(study), "--json", *flags)
    assert code == 0, err
    return {row["config_index"]: row for row in json.loads(out)}


def compare(a: Path, b: Path, *flags: str) -> dict[int, dict[str, dict]]:
    """Per pair (by its batch size), its metrics by name."""
    code, out, err = llem("results", "compare", str(a), str(b), "--json", *flags)
    assert code == 0, err
    return {
        pair["swept"]["pytorch.batch_size"]: {m["metric"]: m for m in pair["metrics"]}
        for pair in json.loads(out)["pairs"]
    }


def test_a_cpu_study_keeps_every_run_in_show(tmp_path: Path) -> None:
    """No GPU energy was read: there is no verdict to leave a run out by; throughput stays."""
    study = cpu_study(tmp_path)
    for flags in ((), ("--valid-only",)):
        rows = show(study, *flags)
        for index, row in rows.items():
            assert row["runs_completed"] == 2 and row["runs_failed"] == 0
            speed = row["metrics"][TOK_S]
            assert speed["n"] == 2 and speed["mean"] == pytest.approx(10.0 * (index + 1) + 0.5)
            assert row["metrics"][J_TOKEN]["mean"] is None
    for row in show(study, "--valid-only").values():
        assert (row["runs_valid"], row["runs_judged"], row["runs_no_verdict"]) == (0, 0, 2)
    code, out, _ = llem("results", "show", str(study), "--valid-only")
    assert code == 0
    assert "10.5 ±" in out and "20.5 ±" in out  # tok/s over both cycles
    assert "no verdict" in out and "GPU energy not measured in 4 run(s)" in out


def test_a_cpu_study_keeps_every_run_in_compare(tmp_path: Path) -> None:
    a, b = cpu_study(tmp_path, "a"), cpu_study(tmp_path, "b")
    for flags in ((), ("--valid-only",)):
        pairs = compare(a, b, *flags)
        assert set(pairs) == {1, 2}
        for batch, metrics in pairs.items():
            speed = metrics[TOK_S]
            assert (speed["a_n"], speed["b_n"]) == (2, 2)
            assert speed["a_mean"] == pytest.approx(10.0 * batch + 0.5)
            assert speed["ratio"] == pytest.approx(1.0)


def gpu_study(root: Path, study_id: str, throttled: tuple[int, int] | None) -> Path:
    """Batch sizes 1 and 2 over 3 cycles; the run at (config, cycle) `throttled` was throttled.
    Each cycle's figures differ, so the mean says which runs it holds."""
    configs = [({"pytorch.batch_size": b}, pytorch_config(b)) for b in (1, 2)]
    return write_study(
        root,
        configs,
        3,
        lambda ci, cy: Figures(
            tokens_per_s=100.0 * (ci + 1) + 10 * cy,
            j_per_token=0.5 + 0.1 * cy,
            invalid=("throttled",) if (ci, cy) == throttled else (),
        ),
        study_id=study_id,
    )


def test_a_run_of_energy_not_valid_is_left_out_of_show_alone(tmp_path: Path) -> None:
    study = gpu_study(tmp_path, "gpu", throttled=(0, 1))
    everything = show(study)
    assert everything[0]["metrics"][TOK_S]["n"] == 3
    assert (everything[0]["runs_valid"], everything[0]["runs_judged"]) == (2, 3)
    rows = show(study, "--valid-only")
    first, second = rows[0], rows[1]
    assert first["runs_completed"] == 2 and first["runs_failed"] == 0
    assert first["invalid_reasons"] == ["throttled"]
    for metric in (TOK_S, J_TOKEN):  # the run is left out, all of its figures with it
        assert first["metrics"][metric]["n"] == 2
    assert first["metrics"][TOK_S]["mean"] == pytest.approx(110.0)  # cycles 0 and 2
    assert first["metrics"][J_TOKEN]["mean"] == pytest.approx(0.6)
    assert second["runs_completed"] == 3 and second["metrics"][TOK_S]["n"] == 3


def test_a_run_of_energy_not_valid_is_left_out_of_compare_alone(tmp_path: Path) -> None:
    a = gpu_study(tmp_path, "a", throttled=(0, 1))
    b = gpu_study(tmp_path, "b", throttled=None)
    assert compare(a, b)[1][TOK_S]["a_n"] == 3
    pairs = compare(a, b, "--valid-only")
    for metric in (TOK_S, J_TOKEN):
        assert (pairs[1][metric]["a_n"], pairs[1][metric]["b_n"]) == (2, 3)
        assert (pairs[2][metric]["a_n"], pairs[2][metric]["b_n"]) == (3, 3)
    assert pairs[1][TOK_S]["a_mean"] == pytest.approx(110.0)


def test_the_library_means_the_same(tmp_path: Path) -> None:
    from llenergymeasure import api

    cpu = api.load_results(cpu_study(tmp_path), valid_only=True).configurations
    assert cpu[f"{TOK_S}.n"].tolist() == [2, 2]
    gpu = api.load_results(gpu_study(tmp_path, "gpu", (0, 1)), valid_only=True).configurations
    assert gpu[f"{TOK_S}.n"].tolist() == [2, 3]


def test_show_and_compare_say_the_same_in_their_help() -> None:
    from llenergymeasure.results.validity import VALID_ONLY

    for command in ("show", "compare"):
        code, out, _ = llem("results", command, "--help")
        assert code == 0 and " ".join(VALID_ONLY.split()[:6]) in " ".join(out.split())
