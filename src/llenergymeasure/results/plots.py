"""Plots of a study (matplotlib's object API: no pyplot state, no display needed).

Each builder returns a Figure, or None with the reason it cannot be drawn (e.g. energy not
measured on a CPU-only machine): a missing figure is said, never drawn from zeros.
"""

from __future__ import annotations

import io
import itertools
import math
import textwrap
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from llenergymeasure.contract.backends import BACKEND_TABLE
from llenergymeasure.contract.workdir import (
    TIMESERIES_GPU,
    TIMESERIES_PHASE,
    TIMESERIES_POWER,
    TIMESERIES_TEMPERATURE,
    TIMESERIES_TIME,
    WorkPaths,
    atomic_write_bytes,
)
from llenergymeasure.errors import UserError
from llenergymeasure.results.load import RunData, StudyData
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.results.plot_base import Plot, slug
from llenergymeasure.results.search import search_view
from llenergymeasure.results.search_plots import search_plots
from llenergymeasure.results.tables import na_reason
from llenergymeasure.study import work_files
from llenergymeasure.study.untrusted import UntrustedFile

J_TOKEN = "energy.j_per_output_token"
TOK_S = "throughput.output_tokens_per_s"
FORMATS = ("png", "svg")


def axis_label(metric: str) -> str:
    """A metric's label and unit, from the catalogue."""
    return f"{BY_COLUMN[metric].label} ({BY_COLUMN[metric].unit})"


PNG_DPI = 120


def _colour(backend: str) -> str:
    spec = BACKEND_TABLE.get(backend)
    return spec.colour if spec is not None else "#7f7f7f"


def _errors(frame: pd.DataFrame, metric: str) -> list[list[float]]:
    """Asymmetric error bars from the CI columns; 0 where a CI is missing (one cycle)."""
    mean = frame[f"{metric}.mean"]
    low = (mean - frame[f"{metric}.ci95_low"]).fillna(0).clip(lower=0)
    high = (frame[f"{metric}.ci95_high"] - mean).fillna(0).clip(lower=0)
    return [low.tolist(), high.tolist()]


def _not_measured(ax: Axes, runs: pd.DataFrame, metric: str) -> None:
    """A panel that says why its metric has no value, instead of drawing zeros."""
    ax.text(
        0.5,
        0.5,
        "n/a\n" + textwrap.fill(na_reason(runs, metric), 50),
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=10,
    )
    ax.set_axis_off()


NOT_VALID_LABEL = "hollow: GPU energy of some runs not valid"


def _mark_not_valid(ax: Axes, frame: pd.DataFrame, x: pd.Series | list, metric: str) -> bool:
    """Hollow markers over the energy points whose mean holds a run of GPU energy that is not
    valid (`results.validity`), so a figure that reads as clean is one; True when any."""
    if not BY_COLUMN[metric].reads_gpu_energy or "runs_valid" not in frame.columns:
        return False
    mask = (frame["runs_valid"] < frame["runs_judged"]).to_numpy()  # a judged run not valid
    if not mask.any():
        return False
    ax.plot(
        pd.Series(list(x))[mask],
        frame[f"{metric}.mean"].to_numpy()[mask],
        linestyle="none",
        marker="o",
        markersize=8,
        markerfacecolor="white",
        markeredgecolor="black",
        zorder=3,
        label=NOT_VALID_LABEL,
    )
    return True


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """Configurations no other beats on both throughput (higher) and J/token (lower)."""
    ordered = points.sort_values([f"{TOK_S}.mean", f"{J_TOKEN}.mean"], ascending=[False, True])
    best = math.inf
    keep = []
    for index, row in ordered.iterrows():
        if row[f"{J_TOKEN}.mean"] < best:
            best = row[f"{J_TOKEN}.mean"]
            keep.append(index)
    return ordered.loc[keep].sort_values(f"{TOK_S}.mean")


def pareto_plot(summary: pd.DataFrame, runs: pd.DataFrame) -> Plot:
    title = "Energy per output token vs throughput"
    points = summary.dropna(subset=[f"{J_TOKEN}.mean", f"{TOK_S}.mean"])
    if points.empty:
        return Plot(
            "pareto", title, None, f"energy per token not measured: {na_reason(runs, J_TOKEN)}"
        )
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    for backend, group in points.groupby("backend", sort=True):
        ax.errorbar(
            group[f"{TOK_S}.mean"],
            group[f"{J_TOKEN}.mean"],
            xerr=_errors(group, TOK_S),
            yerr=_errors(group, J_TOKEN),
            fmt="o",
            markersize=7,
            capsize=3,
            color=_colour(str(backend)),
            label=str(backend),
        )
    front = pareto_front(points)
    ax.plot(
        front[f"{TOK_S}.mean"],
        front[f"{J_TOKEN}.mean"],
        "--o",
        color="black",
        markerfacecolor="none",
        markersize=14,
        linewidth=1.2,
        label="Pareto front",
        zorder=0,
    )
    _mark_not_valid(ax, points, points[f"{TOK_S}.mean"], J_TOKEN)
    for _, row in points.iterrows():
        ax.annotate(
            f"#{int(row['config_index'])}",
            (row[f"{TOK_S}.mean"], row[f"{J_TOKEN}.mean"]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=9,
        )
    ax.set_xlabel(axis_label(TOK_S))
    ax.set_ylabel(axis_label(J_TOKEN))
    ax.set_title(
        f"{title}\n(mean over cycles, bars = 95 % CI, energy with the instrument; "
        "lower right is better)"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(title="backend")
    return Plot("pareto", title, fig)


def _is_numeric(values: pd.Series) -> bool:
    return all(pd.api.types.is_number(v) and not pd.api.types.is_bool(v) for v in values.dropna())


def sweep_plot(summary: pd.DataFrame, runs: pd.DataFrame, key: str, swept_keys: list[str]) -> Plot:
    """J/token and throughput along one swept dimension; one line per value of the others."""
    title = f"Energy per token and throughput along {key}"
    others = [k for k in swept_keys if k != key]
    numeric = _is_numeric(summary[key])
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = ((J_TOKEN, axis_label(J_TOKEN)), (TOK_S, axis_label(TOK_S)))
    groups = summary.groupby(others, sort=True, dropna=False) if others else [((), summary)]
    for ax, (metric, label) in zip(axes, panels, strict=True):
        measured = summary.dropna(subset=[f"{metric}.mean"])
        if measured.empty:
            _not_measured(ax, runs, metric)
            continue
        categories = [str(v) for v in summary[key].drop_duplicates()]
        for values, group in groups:
            group = group.dropna(subset=[f"{metric}.mean"])
            if group.empty:
                continue
            group = group.sort_values(key) if numeric else group
            x = group[key] if numeric else [categories.index(str(v)) for v in group[key]]
            values = values if isinstance(values, tuple) else (values,)
            name = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True)) or None
            ax.errorbar(
                x,
                group[f"{metric}.mean"],
                yerr=_errors(group, metric),
                marker="o",
                capsize=3,
                label=name,
            )
        x_all = measured[key] if numeric else [categories.index(str(v)) for v in measured[key]]
        marked = _mark_not_valid(ax, measured, x_all, metric)
        if not numeric:
            ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
        elif all(float(v).is_integer() for v in summary[key].dropna()):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(key)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if others or marked:
            ax.legend(fontsize=8)
    fig.suptitle(
        f"{title} (mean over cycles, bars = 95 % CI; energy: bootstrap with the instrument)"
    )
    return Plot(f"sweep_{slug(key)}", title, fig)


RATE = "serving.achieved_request_rate"
TTFT_P99 = "latency.ttft_ms.p99"
RATE_KEY = "serving.request_rate"


def serving_plot(summary: pd.DataFrame, runs: pd.DataFrame, swept_keys: list[str]) -> Plot:
    """J/token and p99 TTFT against the achieved request rate: one line per configuration
    apart from its request rate (the other swept values), points in rate order."""
    title = "Energy per token and p99 TTFT against achieved request rate"
    others = [k for k in swept_keys if k != RATE_KEY]
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = ((J_TOKEN, axis_label(J_TOKEN)), (TTFT_P99, axis_label(TTFT_P99)))
    groups = summary.groupby(others, sort=True, dropna=False) if others else [((), summary)]
    for ax, (metric, label) in zip(axes, panels, strict=True):
        measured = summary.dropna(subset=[f"{metric}.mean", f"{RATE}.mean"])
        if measured.empty:
            _not_measured(ax, runs, metric)
            continue
        for values, group in groups:
            group = group.dropna(subset=[f"{metric}.mean", f"{RATE}.mean"])
            if group.empty:
                continue
            group = group.sort_values(f"{RATE}.mean")
            values = values if isinstance(values, tuple) else (values,)
            name = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True)) or None
            ax.errorbar(
                group[f"{RATE}.mean"],
                group[f"{metric}.mean"],
                xerr=_errors(group, RATE),
                yerr=_errors(group, metric),
                marker="o",
                capsize=3,
                label=name,
            )
        marked = _mark_not_valid(ax, measured, measured[f"{RATE}.mean"], metric)
        ax.set_xlabel(axis_label(RATE))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if others or marked:
            ax.legend(fontsize=8)
    fig.suptitle(
        f"{title} (mean over cycles, bars = 95 % CI; energy: bootstrap with the instrument)"
    )
    return Plot("serving_rate", title, fig)


# What the timeline reads of timeseries.parquet: time, GPU and phase first (needed).
TIMELINE_COLUMNS = (
    TIMESERIES_TIME,
    TIMESERIES_GPU,
    TIMESERIES_PHASE,
    TIMESERIES_POWER,
    TIMESERIES_TEMPERATURE,
)


def timeline_plot(work_dir: Path | None, run_id: str) -> Plot:
    """Power and temperature over the measured window of one run, per GPU (the experiment's
    timeseries.parquet in its work folder: its columns are named in contract.workdir)."""
    title = f"Power and temperature of run {run_id}"
    try:
        table = (
            work_files.read_parquet(work_dir, WorkPaths.TIMESERIES, TIMELINE_COLUMNS)
            if work_dir is not None
            else None
        )
    except UntrustedFile as refused:
        return Plot("timeline", title, None, f"{refused}; not read")
    if table is None:
        return Plot("timeline", title, None, "the run left no timeseries.parquet")
    lacking = [c for c in TIMELINE_COLUMNS[:3] if c not in table.column_names]
    if lacking:
        return Plot("timeline", title, None, f"timeseries.parquet has no {', '.join(lacking)}")
    frame = table.to_pandas().reset_index(drop=True)
    if frame.empty:
        return Plot("timeline", title, None, "timeseries.parquet has no samples")
    power = [c for c in (TIMESERIES_POWER,) if c in frame and frame[c].notna().any()]
    temperature = [c for c in (TIMESERIES_TEMPERATURE,) if c in frame and frame[c].notna().any()]
    if not power and not temperature:
        return Plot("timeline", title, None, "timeseries.parquet has no power or temperature")
    t = frame[TIMESERIES_TIME] - frame[TIMESERIES_TIME].min()
    gpu = TIMESERIES_GPU
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    ax = fig.add_subplot()
    twin = ax.twinx() if power and temperature else None
    power_ax, temp_ax = ax, twin or ax
    series = frame.groupby(gpu, sort=True) if gpu else [(None, frame)]
    colours = itertools.cycle(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])
    for index, part in series:
        # One colour per GPU: power solid, temperature dashed.
        colour = next(colours)
        suffix = f" GPU {index}" if index is not None else ""
        part_t = t.loc[part.index]
        for column in power:
            power_ax.plot(part_t, part[column], color=colour, label=f"{column}{suffix} (W)")
        for column in temperature:
            temp_ax.plot(part_t, part[column], "--", color=colour, label=f"{column}{suffix} (°C)")
    _shade_phases(ax, t, frame[TIMESERIES_PHASE])
    ax.set_xlabel("Time since first sample (s)")
    if power:
        power_ax.set_ylabel("Power (W)")
    if temperature:
        temp_ax.set_ylabel("Temperature (°C)")
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=min(len(labels), 4))
    ax.grid(True, alpha=0.3)
    ax.set_title(title, pad=14)
    return Plot("timeline", title, fig)


PHASE_SHADES = ("#e8e8e8", "#dbe9f6", "#fde7d4", "#dff2df", "#f3e0f0")


def _shade_phases(ax: Axes, t: pd.Series, phase: pd.Series) -> None:
    """Shade and name each phase (load, baseline, warmup, window...) the sampler tagged."""
    ordered = pd.DataFrame({"t": t, "phase": phase}).sort_values("t", kind="stable")
    segment = (ordered["phase"] != ordered["phase"].shift()).cumsum()
    shades: dict[str, str] = {}
    for _, part in ordered.groupby(segment, sort=False):
        name = str(part["phase"].iloc[0])
        shade = shades.setdefault(name, PHASE_SHADES[len(shades) % len(PHASE_SHADES)])
        start, end = float(part["t"].min()), float(part["t"].max())
        ax.axvspan(start, end, color=shade, alpha=0.6, zorder=0, linewidth=0)
        ax.text(
            (start + end) / 2,
            1.0,
            name,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
        )


def render(figure: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=PNG_DPI)
    return buffer.getvalue()


def save(plot: Plot, folder: Path) -> list[Path]:
    """Write the figure as PNG and SVG; nothing when there is no figure."""
    if plot.figure is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = folder / f"{plot.name}.{fmt}"
        atomic_write_bytes(path, render(plot.figure, fmt))
        paths.append(path)
    return paths


def pick_run(study: StudyData, run_id: str | None) -> RunData | None:
    """The named run, or else the first completed run with a timeline, or else the first one."""
    if run_id is not None:
        for run in study.runs:
            if run.planned.run_id == run_id:
                return run
        raise UserError(
            f"--run {run_id!r}: no such run in {study.study_dir}",
            hint="run ids are the folder names under experiments/",
        )
    completed = study.completed
    with_timeline = [run for run in completed if work_files.has_timeseries(run.work_dir)]
    return (with_timeline or completed or [None])[0]


def study_plots(
    study: StudyData, runs: pd.DataFrame, summary: pd.DataFrame, run_id: str | None = None
) -> list[Plot]:
    """The Pareto plot, for serving studies J/token and p99 TTFT against the achieved rate, one
    sweep plot per swept dimension, a search's own plots (its searched keys are drawn there,
    trial by trial), and one run's timeline."""
    plots = [pareto_plot(summary, runs)]
    if study.has_serving:
        plots.append(serving_plot(summary, runs, study.swept_keys))
    searched = set(study.search.search.space) if study.search is not None else set()
    plots += [
        sweep_plot(summary, runs, key, study.swept_keys)
        for key in study.swept_keys
        if key not in searched
    ]
    if study.search is not None:
        view = search_view(study)
        assert view is not None
        plots += search_plots(view)
    run = pick_run(study, run_id)
    if run is not None:
        plots.append(timeline_plot(run.work_dir, run.planned.run_id))
    return plots
