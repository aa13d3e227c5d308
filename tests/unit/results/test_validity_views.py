"""Validity and uncertainty in the views: `results show` (its valid column, --valid-only, the
invalid runs with reasons, the counter/integral line, the instrument footnote) and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_llem as llem
from helpers.results import Figures, pytorch_config, write_study
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.report import build_report


def throttled_once(tmp_path: Path) -> Path:
    """One configuration, three cycles; the second cycle's GPU energy was throttled."""
    j = [0.50, 0.90, 0.52]
    return write_study(
        tmp_path,
        [({"pytorch.batch_size": 1}, pytorch_config(1))],
        3,
        lambda ci, cy: Figures(
            tokens_per_s=100.0,
            j_per_token=j[cy],
            invalid=("throttled",) if cy == 1 else (),
            counter_integral_ratio=(0.99, 1.02, 1.01)[cy],
        ),
    )


def test_show_counts_valid_runs_and_lists_the_invalid_one(tmp_path: Path) -> None:
    study = throttled_once(tmp_path)
    code, out, _ = llem("results", "show", str(study))
    assert code == 0
    assert "2/3 throttled" in out
    assert "GPU energy measured but not valid in 1 run(s)" in out
    assert "throttled: synthetic" in out
    assert "median 1.0100, range 0.9900-1.0200 over 3 GPU window(s)" in out


def test_valid_only_leaves_invalid_runs_out_of_the_statistics(tmp_path: Path) -> None:
    study = throttled_once(tmp_path)
    _, out, _ = llem("results", "show", str(study), "--json")
    (row,) = json.loads(out)
    assert row["metrics"]["energy.j_per_output_token"]["n"] == 3
    assert (row["runs_valid"], row["invalid_reasons"]) == (2, ["throttled"])
    _, out, _ = llem("results", "show", str(study), "--json", "--valid-only")
    (row,) = json.loads(out)
    energy = row["metrics"]["energy.j_per_output_token"]
    assert energy["n"] == 2 and energy["mean"] == pytest.approx(0.51)
    assert row["runs_failed"] == 0 and row["runs_completed"] == 2


def test_the_library_leaves_invalid_runs_out_when_asked(tmp_path: Path) -> None:
    from llenergymeasure import api

    study = throttled_once(tmp_path)
    column = "energy.j_per_output_token.n"
    assert api.load_results(study).configurations[column].tolist() == [3]
    assert api.load_results(study, valid_only=True).configurations[column].tolist() == [2]


def test_an_instrument_heavy_ci_is_marked(tmp_path: Path) -> None:
    study = write_study(
        tmp_path,
        [({"pytorch.batch_size": 1}, pytorch_config(1))],
        3,
        lambda ci, cy: Figures(tokens_per_s=100.0, j_per_token=0.5, uncertainty_pct=5.0),
    )
    _, out, _ = llem("results", "show", str(study), "--json")
    energy = json.loads(out)[0]["metrics"]["energy.j_per_output_token"]
    assert energy["instrument_share_pct"] == pytest.approx(100.0)  # no spread between cycles
    u = (3 * (0.025**2)) ** 0.5 / 3
    assert energy["ci95_high"] - energy["mean"] == pytest.approx(1.959963984540054 * u)
    _, out, _ = llem("results", "show", str(study))
    assert " †" in out and "more than a third of this CI" in out


def test_report_has_the_validity_section(tmp_path: Path) -> None:
    html = build_report(load_study_results(throttled_once(tmp_path)))
    assert 'id="validity"' in html
    assert "runs whose GPU energy is not valid (1)" in html
    assert "throttled: synthetic" in html
    assert "2 / 3: throttled" in html
    assert "median 1.0100" in html


def test_a_power_limit_sweep_plots_energy_per_token_against_the_limit(tmp_path: Path) -> None:
    from llenergymeasure.contract.config import ExperimentConfig
    from llenergymeasure.results.plots import study_plots
    from llenergymeasure.results.tables import runs_frame, summary_frame

    limits = [200.0, 300.0, 400.0]
    configs = [
        ({"gpu.power_limit_w": w}, ExperimentConfig(model="tiny-model", gpu={"power_limit_w": w}))
        for w in limits
    ]
    study_dir = write_study(
        tmp_path,
        configs,
        2,
        lambda ci, cy: Figures(tokens_per_s=100.0 + 20 * ci, j_per_token=0.4 + 0.05 * ci),
    )
    study = load_study_results(study_dir)
    runs = runs_frame(study)
    # the limit asked for (the swept key) beside the one the container read back
    assert set(runs["gpu.power_limit_w"]) == set(limits)
    assert set(runs["environment.power_limit_w"]) == {700.0}  # the synthetic GPU's
    plots = {p.name: p for p in study_plots(study, runs, summary_frame(study, runs))}
    plot = plots["sweep_gpu_power_limit_w"]
    assert plot.figure is not None
    (line, *_) = plot.figure.axes[0].get_lines()
    assert list(line.get_xdata()) == limits
    assert list(line.get_ydata()) == pytest.approx([0.4, 0.45, 0.5])


def test_plots_draw_energy_with_an_invalid_run_hollow(tmp_path: Path) -> None:
    from llenergymeasure.contract.config import ExperimentConfig
    from llenergymeasure.results.plots import NOT_VALID_LABEL, study_plots
    from llenergymeasure.results.tables import runs_frame, summary_frame

    configs = [
        ({"gpu.power_limit_w": w}, ExperimentConfig(model="tiny-model", gpu={"power_limit_w": w}))
        for w in (200.0, 300.0, 400.0)
    ]
    study_dir = write_study(
        tmp_path,
        configs,
        2,
        lambda ci, cy: Figures(
            tokens_per_s=100.0 + 20 * ci,
            j_per_token=0.4 + 0.05 * ci,
            invalid=("throttled",) if (ci, cy) == (2, 1) else (),
        ),
    )
    study = load_study_results(study_dir)
    runs = runs_frame(study)
    plots = {p.name: p for p in study_plots(study, runs, summary_frame(study, runs))}

    def hollow(axes) -> list[tuple[float, float]]:
        lines = [line for line in axes.get_lines() if line.get_label() == NOT_VALID_LABEL]
        return [(x, y) for line in lines for x, y in zip(*line.get_data(), strict=True)]

    energy, speed = plots["sweep_gpu_power_limit_w"].figure.axes[:2]
    assert hollow(energy) == [(400.0, pytest.approx(0.5))]
    assert hollow(speed) == []  # throughput does not depend on the energy's validity
    assert hollow(plots["pareto"].figure.axes[0]) == [(140.0, pytest.approx(0.5))]


def test_the_report_counts_unmeasured_runs_apart(tmp_path: Path) -> None:
    from helpers.results import cpu_study

    html = build_report(load_study_results(cpu_study(tmp_path)))
    assert "runs whose GPU energy is not valid (0)" in html
    assert "GPU energy was not measured in 4 run(s)" in html
