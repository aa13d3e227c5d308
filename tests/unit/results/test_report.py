"""Plots and the HTML report: what they contain, and how they say what could not be drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.results import (
    NO_ENERGY,
    OOM,
    Figures,
    cpu_study,
    pytorch_config,
    standard_study,
    write_study,
)
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.plots import pareto_front, timeline_plot
from llenergymeasure.results.report import build_report, write_report


def test_pareto_front_keeps_only_undominated_configurations() -> None:
    points = pd.DataFrame(
        {
            "config_index": [0, 1, 2, 3, 4],
            "throughput.output_tokens_per_s.mean": [100.0, 200.0, 150.0, 300.0, 250.0],
            "energy.j_per_output_token.mean": [0.5, 0.3, 0.6, 0.4, 0.2],
        }
    )
    # 2 is beaten by 1; 0 by 1; 1 by 4; 3 has the highest throughput; 4 the lowest energy.
    assert pareto_front(points)["config_index"].tolist() == [4, 3]


def _timeseries(path: Path, **columns: object) -> Path:
    pd.DataFrame(columns).to_parquet(path)
    return path


def test_timeline_draws_per_gpu_power_and_temperature(tmp_path: Path) -> None:
    t = np.arange(0.0, 5.0, 0.5)
    _timeseries(
        tmp_path / "timeseries.parquet",
        t_s=np.concatenate([t, t]),
        gpu=[0] * len(t) + [1] * len(t),
        phase=(["baseline"] * 4 + ["window"] * (len(t) - 4)) * 2,
        power_w=np.linspace(100, 300, 2 * len(t)),
        temperature_c=np.linspace(40, 60, 2 * len(t)),
    )
    plot = timeline_plot(tmp_path, "0000_abc_c0")
    assert plot.figure is not None
    power_ax, temp_ax = plot.figure.axes
    assert power_ax.get_ylabel() == "Power (W)" and temp_ax.get_ylabel() == "Temperature (°C)"
    assert len(power_ax.lines) == 2 and len(temp_ax.lines) == 2
    assert [text.get_text() for text in power_ax.texts] == ["baseline", "window"]


def test_timeline_says_why_it_cannot_draw(tmp_path: Path) -> None:
    def frame(**columns: object) -> dict[str, object]:
        # every column the experiment writes, values where given, else nulls
        n = len(next(iter(columns.values()))) if columns else 0
        base = {"t_s": [float(i) for i in range(n)], "gpu": [0] * n, "phase": ["window"] * n}
        empty = {"power_w": [None] * n, "temperature_c": [None] * n}
        return {**base, **empty, **columns}

    assert timeline_plot(None, "r").reason == "the run left no timeseries.parquet"
    assert timeline_plot(tmp_path, "r").reason == "the run left no timeseries.parquet"
    ts = tmp_path / "timeseries.parquet"
    _timeseries(ts, **frame(t_s=[]))
    assert timeline_plot(tmp_path, "r").reason == "timeseries.parquet has no samples"
    _timeseries(ts, **frame(sm_clock_mhz=[1.0, 2.0]))
    assert "no power or temperature" in (timeline_plot(tmp_path, "r").reason or "")
    ts.unlink()
    ts.symlink_to("/dev/zero")
    assert timeline_plot(tmp_path, "r").reason == (
        "timeseries.parquet: is a symbolic link; llem does not follow it; not read"
    )
    ts.unlink()
    _timeseries(ts, **frame(power_w=[100.0, 120.0]))
    plot = timeline_plot(tmp_path, "r")
    assert plot.figure is not None and len(plot.figure.axes) == 1


SECTIONS = ("overview", "configurations", "plots", "failures", "validity", "warnings", "images")


def test_report_has_every_section_and_no_external_resource(tmp_path: Path) -> None:
    html = build_report(load_study_results(standard_study(tmp_path)))
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert html.count("data:image/png;base64,") == 2  # Pareto and one sweep plot
    assert "no timeseries.parquet" in html  # the timeline says why it is missing
    assert OOM in html
    assert "llem/pytorch@sha256:" in html
    assert "name: test-study" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_report_marks_unmeasured_figures_na_with_the_reason(tmp_path: Path) -> None:
    html = build_report(load_study_results(cpu_study(tmp_path)))
    assert f'title="{NO_ENERGY}">n/a' in html
    assert '<section id="notes">' in html and NO_ENERGY in html
    assert "energy per token not measured" in html  # the Pareto plot is not drawn from zeros
    assert ">0 <span" not in html


@pytest.mark.parametrize("text", ["<b>bold</b>", "a & b"])
def test_report_escapes_the_study_file(tmp_path: Path, text: str) -> None:
    study_dir = standard_study(tmp_path)
    (study_dir / "study.yaml").write_text(f"name: {text}\n", encoding="utf-8")
    html = build_report(load_study_results(study_dir))
    assert text not in html.split('<section id="study-file">')[1]


def test_the_reports_styles_survive_escaping(tmp_path: Path) -> None:
    configs = [({"pytorch.batch_size": 1}, pytorch_config(1))]
    study = write_study(tmp_path, configs, 1, lambda ci, cy: Figures(tokens_per_s=1.0))
    html = write_report(study).read_text(encoding="utf-8")
    assert 'font-family:system-ui,-apple-system,"Segoe UI",sans-serif' in html
    assert "&#34;Segoe UI&#34;" not in html
