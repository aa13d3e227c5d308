"""`llem results`: show, export, compare, plot and report a study's results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import shown
from llenergymeasure.results.cells import NOT_REPORTED, Footnotes, MetricCell, missing, number
from llenergymeasure.results.validity import VALID_ONLY
from llenergymeasure.study.folder import StudyPaths

if TYPE_CHECKING:
    import pandas as pd

    from llenergymeasure.results.load import StudyData

# The results modules (pandas, matplotlib) are imported inside each command: importing them
# here would add most of a second to every `llem` start.

results_app = typer.Typer(
    help="Show, export, compare, plot and report a study's results.", no_args_is_help=True
)
# Piped output has no terminal to fit: give tables room rather than wrap every cell.
console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)

StudyDir = Annotated[Path, typer.Argument(help="The study folder: <output_dir>/<study_id>.")]


def _jsonable(value: Any) -> Any:
    if missing(value):
        return None
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    return value


@results_app.command("show")
def show(
    study_dir: StudyDir,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            help="j_per_token, tok_per_s, ttft_p50, itl_p50, failures, config, or any summary.csv "
            "column; prefix '-' for descending.",
        ),
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", help="key=value on backend, model, config_hash or a swept key; repeatable."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    valid_only: Annotated[
        bool,
        typer.Option(
            "--valid-only",
            help=f"{VALID_ONLY} (counted in the valid column; the reasons are listed).",
        ),
    ] = False,
) -> None:
    """One row per configuration: swept values, J/token, tok/s, TTFT/ITL p50 with CIs, how many
    runs' energy is valid. A search
    also shows its trials, its best configuration with the confirmation's CI (several
    objectives: the Pareto front); --json then holds {"configurations": [...], "search": {...}}."""
    from llenergymeasure.results.load import load_study_results, require_results
    from llenergymeasure.results.search import search_view

    study = load_study_results(study_dir)
    view = search_view(study)
    if view is None:
        require_results(study)
    rows = _configurations(study, sort, filters, as_json, valid_only) if study.completed else []
    if view is None:
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        return
    if as_json:
        typer.echo(json.dumps({"configurations": rows, "search": view.as_json()}, indent=2))
        return
    from llenergymeasure.cli.search_show import print_search

    print_search(console, view)


def _configurations(
    study: StudyData, sort: str | None, filters: list[str] | None, as_json: bool, valid_only: bool
) -> list[dict[str, Any]]:
    """The configuration table: printed, or as JSON rows when `as_json`."""
    from llenergymeasure.results.audit import (
        INSTRUMENT_SHARE_NOTE_PCT,
        counter_integral_line,
        validity_audit,
    )
    from llenergymeasure.results.metrics import BY_COLUMN, SHOWN, WINDOWS, for_study
    from llenergymeasure.results.query import apply_filters, apply_sort
    from llenergymeasure.results.tables import STAGE_COLUMNS, runs_frame, summary_frame

    metrics_shown = for_study(SHOWN, study.has_serving)
    runs = runs_frame(study)
    summary = summary_frame(study, runs, valid_only)
    summary = apply_sort(apply_filters(summary, filters or [], study.swept_keys), sort)
    swept = [key for key in study.swept_keys if key not in ("backend", "model")]
    # a staged serving run: one row per stage, named by its index and settings
    swept += [
        key for key in STAGE_COLUMNS[:3] if key in summary.columns and summary[key].notna().any()
    ]
    if as_json:
        rows = [
            {
                "config_index": int(row["config_index"]),
                "config_hash": row["config_hash"],
                "backend": row["backend"],
                "model": row["model"],
                "swept": {key: _jsonable(row[key]) for key in swept},
                "runs_planned": int(row["runs_planned"]),
                "runs_completed": int(row["runs_completed"]),
                "runs_failed": int(row["runs_failed"]),
                "runs_valid": int(row["runs_valid"]),
                "runs_judged": int(row["runs_judged"]),
                "runs_no_verdict": int(row["runs_no_verdict"]),
                "invalid_reasons": row["invalid_reasons"].split(",")
                if row["invalid_reasons"]
                else [],
                "cv_flagged": bool(row["cv_flagged"]),
                "metrics": {
                    metric: {
                        "unit": BY_COLUMN[metric].unit,
                        **{
                            stat: _jsonable(row[f"{metric}.{stat}"])
                            for stat in (
                                "n",
                                "mean",
                                "std",
                                "ci95_low",
                                "ci95_high",
                                "cv_pct",
                                "instrument_u",
                                "instrument_share_pct",
                            )
                        },
                        "na_reason": _jsonable(row[f"{metric}.na_reason"]),
                    }
                    for metric in (m.column for m in metrics_shown)
                },
            }
            for _, row in summary.iterrows()
        ]
        return rows
    # A column whose value is the same in every row goes into the title instead.
    varying = [key for key in ("backend", "model") if summary[key].nunique() > 1]
    constant = [str(summary[key].iloc[0]) for key in ("backend", "model") if key not in varying]
    title = f"{study.manifest.study_name} ({study.manifest.study_id})"
    if constant and not summary.empty:
        title += ": " + ", ".join(constant)
    caption = (
        "mean ± half-width of the 95 % CI over cycles (bootstrap; energy: with the "
        "instrument's uncertainty; no ± with one completed cycle); n/a: see footnotes"
    )
    other_windows = [m for m in metrics_shown if m.window != "window"]
    if other_windows:
        caption += "; every figure covers the measured window (serving: its steady state) but " + (
            ", ".join(f"{m.short}: {WINDOWS[m.window]}" for m in other_windows)
        )
    table = Table(title=shown(title), caption=caption)
    for column in ["#", *varying, *swept]:
        table.add_column(shown(column))
    for title in (m.short for m in metrics_shown):
        table.add_column(title, justify="right")
    table.add_column("ok/planned", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("valid energy", justify="right")
    table.add_column("CV>5%")
    notes = Footnotes()
    instrument_heavy = False
    for _, row in summary.iterrows():
        cells = [str(int(row["config_index"])), *(shown(str(row[key])) for key in varying)]
        cells += ["" if missing(row[key]) else shown(str(row[key])) for key in swept]
        for metric in (m.column for m in metrics_shown):
            text = _metric_text(row, metric, notes)
            share = row.get(f"{metric}.instrument_share_pct")
            if not missing(share) and share > INSTRUMENT_SHARE_NOTE_PCT:
                text, instrument_heavy = text + " †", True
            cells.append(text)
        cells.append(f"{int(row['runs_completed'])}/{int(row['runs_planned'])}")
        failed = int(row["runs_failed"])
        cells.append(f"[red]{failed}[/]" if failed else "0")
        cells.append(_valid_text(row))
        cells.append(f"[red]{shown(row['high_cv_metrics'])}[/]" if row["cv_flagged"] else "")
        table.add_row(*cells)
    console.print(table)
    if summary.empty:
        console.print("no configuration matches the filters")
    for index, reason in enumerate(notes.reasons, 1):
        console.print(f"[yellow]n/a[{index}][/]: {shown(reason)}")
    if instrument_heavy:
        console.print(
            "†: the instrument's own uncertainty is more than a third of this CI "
            "(short windows or few cycles; see README, How far to trust a figure)"
        )
    line = counter_integral_line(runs)
    if line:
        console.print(shown(line))
    audit = validity_audit(runs)
    if audit.not_valid:
        console.print(
            f"[yellow]GPU energy measured but not valid in {len(audit.not_valid)} run(s)[/]"
            + (" (left out: --valid-only)" if valid_only else "")
            + ":"
        )
        for run in audit.not_valid:
            where = run.run_id + (f" stage {run.stage}" if run.stage is not None else "")
            console.print(f"  {shown(where)}: {shown(run.validity.detail)}")
    if audit.not_measured:
        console.print(f"GPU energy not measured in {audit.not_measured} run(s): see n/a")
    if audit.not_judged:
        console.print(
            f"GPU energy of {audit.not_judged} run(s) recorded before llem judged validity: "
            "no verdict"
        )
    return []


def _valid_text(row: pd.Series) -> str:
    """Runs with valid GPU energy / runs judged, red with the reasons when not all."""
    from llenergymeasure.results.audit import valid_of_judged

    text = valid_of_judged(row)
    if row["runs_valid"] < row["runs_judged"]:
        return f"[red]{text} {shown(row['invalid_reasons'])}[/]"
    return text


def _metric_text(row: pd.Series, metric: str, notes: Footnotes) -> str:
    cell = MetricCell.of(row, metric)
    if cell.mean is None:
        return f"[yellow]n/a[{notes.number(cell.reason or NOT_REPORTED)}][/]"
    if cell.half_width is None:
        return number(cell.mean)
    return f"{number(cell.mean)} ± {number(cell.half_width)}"


@results_app.command("export")
def export(
    study_dir: StudyDir,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write (default: <study_dir>/results.<format>)."
        ),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("--summary", help="Export one row per configuration instead of one per run."),
    ] = False,
    trials: Annotated[
        bool,
        typer.Option("--trials", help="A search: export its trial table (one row per trial)."),
    ] = False,
) -> None:
    """Write the per-run (or per-configuration, or a search's per-trial) table as CSV, Parquet
    or JSON."""
    from llenergymeasure.results.export import EXPORT_FORMATS, write_frame
    from llenergymeasure.results.load import load_study_results, require_results
    from llenergymeasure.results.search import search_view
    from llenergymeasure.results.tables import runs_frame, summary_frame
    from llenergymeasure.results.trials import trials_frame

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    if summary and trials:
        raise UserError("--summary and --trials: choose one table")
    study = load_study_results(study_dir)
    view = search_view(study)
    if trials and view is None:
        raise UserError(f"--trials: {study_dir} is not a search (its study has no search:)")
    if not trials:
        require_results(study)
    runs = runs_frame(study)
    if trials:
        assert view is not None
        frame = trials_frame(view)
    else:
        frame = summary_frame(study, runs) if summary else runs
    stem = "trials" if trials else "summary" if summary else "results"
    path = output if output is not None else study_dir / f"{stem}.{fmt}"
    if not path.parent.is_dir():
        raise UserError(f"--output {path}: folder {path.parent} does not exist")
    write_frame(frame, path, fmt)  # type: ignore[arg-type]
    console.print(f"wrote {shown(str(path))} ({len(frame)} rows)")


@results_app.command("write")
def write(study_dir: StudyDir) -> None:
    """(Re)write results.parquet, results.csv and summary.csv in the study folder."""
    from llenergymeasure.results.export import write_study_outputs

    for path in write_study_outputs(study_dir):
        console.print(f"wrote {shown(str(path))}")


@results_app.command("compare")
def compare(
    study_a: Annotated[Path, typer.Argument(help="Study A (the reference).")],
    study_b: Annotated[Path, typer.Argument(help="Study B.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    valid_only: Annotated[
        bool,
        typer.Option("--valid-only", help=f"{VALID_ONLY} (counted per pair)."),
    ] = False,
) -> None:
    """Pair configurations by config hash; ratios B/A of key metrics with 95 % CIs."""
    from llenergymeasure.results.compare import compare_studies
    from llenergymeasure.results.load import load_study_results, require_results

    a, b = load_study_results(study_a), load_study_results(study_b)
    require_results(a)
    require_results(b)
    comparison = compare_studies(a, b, valid_only)
    if as_json:
        typer.echo(json.dumps(comparison.as_dict(), indent=2))
        return
    table = Table(
        title=f"B/A: {comparison.study_b} / {comparison.study_a}",
        caption="ratio = mean(B) / mean(A); CI: 95 % bootstrap, cycles resampled per study; "
        "energy: with both studies' instrument uncertainty",
    )
    for column in ("config", "backend", "swept", "metric", "A mean", "B mean", "B/A", "95 % CI"):
        table.add_column(column, justify="right" if "mean" in column or "/" in column else "left")
    for ref, metrics in comparison.pairs:
        swept = ", ".join(f"{k}={v}" for k, v in ref.swept.items())
        for i, m in enumerate(metrics):
            first = i == 0
            table.add_row(
                ref.config_hash[:8] if first else "",
                ref.backend if first else "",
                shown(swept) if first else "",
                f"{m.metric} ({m.unit})",
                "n/a" if m.a_mean is None else f"{number(m.a_mean)} (n={m.a_n})",
                "n/a" if m.b_mean is None else f"{number(m.b_mean)} (n={m.b_n})",
                "n/a" if m.ratio is None else f"{m.ratio:.3f}",
                ""
                if m.ratio_ci95_low is None
                else f"{m.ratio_ci95_low:.3f}-{m.ratio_ci95_high:.3f}",
                end_section=i == len(metrics) - 1,
            )
    console.print(table)
    for digest, bad in comparison.not_valid.items():
        console.print(
            f"GPU energy not valid in {digest[:8]}: A {bad.a}/{bad.a_runs}, B {bad.b}/{bad.b_runs} "
            + (
                "runs (left out: --valid-only)"
                if comparison.valid_only
                else "runs (in the ratios; "
                "--valid-only leaves them out; `results show` gives the reasons)"
            )
        )
    for label, refs in (("only in A", comparison.only_a), ("only in B", comparison.only_b)):
        for ref in refs:
            swept = ", ".join(f"{k}={v}" for k, v in ref.swept.items())
            console.print(f"{label}: {ref.config_hash[:8]} {ref.backend} {shown(swept)}")


@results_app.command("plot")
def plot(
    study_dir: StudyDir,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder for the PNG and SVG files (default: <study>/plots)."
        ),
    ] = None,
    run: str | None = typer.Option(
        None, "--run", help="Run id whose power/temperature timeline to plot."
    ),
) -> None:
    """Pareto plot, one plot per swept dimension and a run's timeline, as PNG and SVG."""
    from llenergymeasure.results.load import load_study_results, require_results
    from llenergymeasure.results.plots import save, study_plots
    from llenergymeasure.results.tables import runs_frame, summary_frame

    study = load_study_results(study_dir)
    require_results(study)
    runs = runs_frame(study)
    folder = output if output is not None else StudyPaths(study_dir).own_folder(StudyPaths.PLOTS)
    for item in study_plots(study, runs, summary_frame(study, runs), run):
        paths = save(item, folder)
        if paths:
            console.print(f"wrote {', '.join(shown(str(p)) for p in paths)}")
        else:
            console.print(f"[yellow]skipped[/] {shown(item.title)}: {shown(item.reason or '')}")


@results_app.command("report")
def report(
    study_dir: StudyDir,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="HTML file to write (default: <study_dir>/report.html)."
        ),
    ] = None,
    run: str | None = typer.Option(
        None, "--run", help="Run id whose power/temperature timeline to include."
    ),
) -> None:
    """One self-contained HTML file: tables, plots, environment, images, failures."""
    from llenergymeasure.results.report import write_report

    if output is not None and not output.parent.is_dir():
        raise UserError(f"--output {output}: folder {output.parent} does not exist")
    path = write_report(study_dir, output, run)
    console.print(f"wrote {shown(str(path))}")
