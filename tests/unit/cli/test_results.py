"""`llem results ...` end to end in-process: output, files written, and user errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers.cli import run_llem as llem
from helpers.results import (
    NO_ENERGY,
    OOM,
    Figures,
    cpu_study,
    pytorch_config,
    standard_study,
    write_study,
)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return standard_study(tmp_path)


def test_show_prints_means_with_ci_widths_and_failures(study) -> None:
    code, out, _ = llem("results", "show", str(study))
    assert code == 0
    assert "pytorch.batch_size" in out
    assert "0.51 ± 0.01" in out  # J/token: mean ± CI half-width
    assert "0.255 ± 0.005" in out
    assert "2/3" in out  # completed / planned


def test_show_json_filter_and_sort(study) -> None:
    code, out, _ = llem("results", "show", str(study), "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["swept"]["pytorch.batch_size"] for r in rows] == [1, 4]
    energy = rows[0]["metrics"]["energy.j_per_output_token"]
    assert energy["unit"] == "J/token"
    assert energy["mean"] == pytest.approx(0.51)
    assert rows[1]["runs_failed"] == 1

    args = ("results", "show", str(study), "--json")
    _, out, _ = llem(*args, "--filter", "pytorch.batch_size=4")
    assert [r["config_index"] for r in json.loads(out)] == [1]
    _, out, _ = llem(*args, "--sort", "j_per_token")
    assert [r["config_index"] for r in json.loads(out)] == [1, 0]
    _, out, _ = llem(*args, "--sort", "-j_per_token")
    assert [r["config_index"] for r in json.loads(out)] == [0, 1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sort", "bogus"], "unknown key 'bogus'"),
        (["--filter", "no-equals-sign"], "is not key=value"),
        (["--filter", "colour=red"], "unknown key 'colour'"),
    ],
)
def test_show_user_errors_exit_2(study, extra, message) -> None:
    code, out, err = llem("results", "show", str(study), *extra)
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err


def test_not_a_study_and_no_results_exit_2(tmp_path) -> None:
    code, _, err = llem("results", "show", str(tmp_path))
    assert code == 2 and "not a study folder" in err
    pending = write_study(tmp_path, [({}, pytorch_config(1))], 1, lambda ci, cy: None)
    for command in ("show", "export", "plot", "report"):
        code, _, err = llem("results", command, str(pending))
        assert code == 2 and "no results yet" in err, command


def test_a_folder_of_studies_names_them_newest_first(tmp_path) -> None:
    """`results show llem-results/`: not a study, but the error names the studies inside."""
    import os

    older = write_study(tmp_path, [({}, pytorch_config(1))], 1, lambda ci, cy: None, study_id="a")
    newer = write_study(tmp_path, [({}, pytorch_config(1))], 1, lambda ci, cy: None, study_id="b")
    os.utime(older / "manifest.jsonl", (1_000_000, 1_000_000))
    (tmp_path / "linked").symlink_to(newer)  # a link is not followed
    code, _, err = llem("results", "show", str(tmp_path))
    assert code == 2 and "not a study folder" in err
    assert (
        f"it holds 2 study folders, newest first: {newer}, {older}; pass one of them"
        in " ".join(err.split())
    )


def test_unmeasured_energy_shows_na_with_reason_never_zero(tmp_path) -> None:
    code, out, _ = llem("results", "show", str(cpu_study(tmp_path)))
    assert code == 0
    assert "n/a[1]" in out
    assert NO_ENERGY in out
    # a figure never read is not listed as an invalid reading, only counted
    assert "GPU energy not measured in 4 run(s)" in out and "measured but not valid" not in out
    rows = json.loads(llem("results", "show", str(tmp_path / "cpu-study"), "--json")[1])
    energy = rows[0]["metrics"]["energy.j_per_output_token"]
    assert energy["mean"] is None and energy["na_reason"] == NO_ENERGY


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_export_formats(study, tmp_path, fmt) -> None:
    target = tmp_path / f"out.{fmt}"
    code, out, _ = llem("results", "export", str(study), "--format", fmt, "-o", str(target))
    assert code == 0 and "6 rows" in out
    frame = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}[fmt](target)
    assert len(frame) == 6
    assert sorted(frame["outcome"].unique()) == ["completed", "failed"]
    assert frame.loc[frame["outcome"] == "failed", "error"].tolist() == [OOM]


def test_export_summary_default_path_and_bad_format(study) -> None:
    code, _, _ = llem("results", "export", str(study), "--summary")
    assert code == 0
    assert len(pd.read_csv(study / "summary.csv")) == 2
    code, _, err = llem("results", "export", str(study), "--format", "xls")
    assert code == 2 and "not one of csv, parquet, json" in err


def test_compare_pairs_by_config_hash(tmp_path) -> None:
    a = write_study(
        tmp_path,
        [({"pytorch.batch_size": b}, pytorch_config(b)) for b in (1, 2)],
        2,
        lambda ci, cy: Figures(tokens_per_s=100.0, j_per_token=1.0),
        study_id="a",
    )
    b = write_study(
        tmp_path,
        [({"pytorch.batch_size": b}, pytorch_config(b)) for b in (2, 8)],
        2,
        lambda ci, cy: Figures(tokens_per_s=150.0, j_per_token=0.8),
        study_id="b",
    )
    code, out, _ = llem("results", "compare", str(a), str(b), "--json")
    assert code == 0
    data = json.loads(out)
    assert [p["swept"] for p in data["pairs"]] == [{"pytorch.batch_size": 2}]
    metrics = {m["metric"]: m for m in data["pairs"][0]["metrics"]}
    energy = metrics["energy.j_per_output_token"]
    assert energy["ratio"] == pytest.approx(0.8)
    # no spread between cycles: the interval is the instrument's alone, 0.5 % per run on both
    # sides -> the mean's relative u is 0.005 / sqrt(2) per study, the ratio's 0.005
    spread = 1.959963984540054 * 0.8 * 0.005
    assert (energy["ratio_ci95_low"], energy["ratio_ci95_high"]) == pytest.approx(
        (0.8 - spread, 0.8 + spread)
    )
    tokens = metrics["throughput.output_tokens_per_s"]  # no instrument term
    assert (tokens["ratio_ci95_low"], tokens["ratio_ci95_high"]) == pytest.approx((1.5, 1.5))
    assert metrics["throughput.output_tokens_per_s"]["ratio"] == pytest.approx(1.5)
    assert [r["swept"] for r in data["only_in_a"]] == [{"pytorch.batch_size": 1}]
    assert [r["swept"] for r in data["only_in_b"]] == [{"pytorch.batch_size": 8}]
    code, out, _ = llem("results", "compare", str(a), str(b))
    assert code == 0 and "0.800" in out and "only in A" in out and "only in B" in out


def test_compare_counts_runs_of_invalid_energy_and_can_leave_them_out(tmp_path) -> None:
    configs = [({"pytorch.batch_size": 2}, pytorch_config(2))]
    a = write_study(
        tmp_path, configs, 3, lambda ci, cy: Figures(tokens_per_s=100.0, j_per_token=1.0),
        study_id="a",
    )  # fmt: skip
    b = write_study(
        tmp_path,
        configs,
        3,
        lambda ci, cy: Figures(
            tokens_per_s=100.0,
            j_per_token=0.2 if cy == 2 else 0.8,  # a cheap-looking reading of a shared GPU
            invalid=("foreign_processes",) if cy == 2 else (),
        ),
        study_id="b",
    )

    def energy_pair(*flags: str) -> dict:
        code, out, _ = llem("results", "compare", str(a), str(b), "--json", *flags)
        assert code == 0
        (pair,) = json.loads(out)["pairs"]
        assert pair["energy_not_valid"] == {"a": 0, "a_runs": 3, "b": 1, "b_runs": 3}
        return {m["metric"]: m for m in pair["metrics"]}["energy.j_per_output_token"]

    mixed = energy_pair()
    assert mixed["b_n"] == 3 and mixed["ratio"] == pytest.approx(0.6)
    valid = energy_pair("--valid-only")
    assert valid["b_n"] == 2 and valid["ratio"] == pytest.approx(0.8)
    code, out, _ = llem("results", "compare", str(a), str(b))
    assert code == 0 and "GPU energy not valid in" in out and "A 0/3, B 1/3" in out


def test_plot_writes_png_and_svg(study, tmp_path) -> None:
    folder = tmp_path / "plots"
    code, out, _ = llem("results", "plot", str(study), "-o", str(folder))
    assert code == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "pareto.png",
        "pareto.svg",
        "sweep_pytorch_batch_size.png",
        "sweep_pytorch_batch_size.svg",
    ]
    assert (folder / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "skipped" in out and "no timeseries.parquet" in out
    code, _, err = llem("results", "plot", str(study), "--run", "nope")
    assert code == 2 and "no such run" in err


def test_report_writes_html(study) -> None:
    code, _, _ = llem("results", "report", str(study))
    assert code == 0
    html = (study / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert OOM in html
