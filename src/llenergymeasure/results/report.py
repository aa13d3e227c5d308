"""One self-contained HTML file per study: tables, plots (embedded PNG), environment, images,
the study file, warnings and failures. No script, no external resource: it opens anywhere.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from llenergymeasure.contract.workdir import atomic_write_text
from llenergymeasure.results.cells import NOT_REPORTED, Footnotes, MetricCell, missing, number
from llenergymeasure.results.load import StudyData, load_study_results, require_results
from llenergymeasure.results.metrics import BY_COLUMN, IN_REPORT
from llenergymeasure.results.plots import Plot, render, study_plots
from llenergymeasure.results.stats import CV_FLAG_PCT
from llenergymeasure.results.tables import runs_frame, summary_frame

REPORT_FILE = "report.html"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d0d0d0;padding:.3rem .55rem;text-align:left;vertical-align:top;
 overflow-wrap:break-word}.scroll{overflow-x:auto}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.na{color:#8a6d00;cursor:help}.flag{color:#b00020;font-weight:600}.muted{color:#666}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #e3e3e3}
figcaption{font-size:.9rem;color:#444}pre{background:#f7f7f7;padding:.8rem;overflow:auto}
code{font-size:.85rem}
"""


class Notes(Footnotes):
    """Footnotes of the report's n/a cells, as links."""

    def na(self, reason: str | None) -> str:
        reason = reason or NOT_REPORTED
        index = self.number(reason)
        return (
            f'<span class="na" title="{escape(reason)}">n/a<sup><a href="#note-{index}">'
            f"[{index}]</a></sup></span>"
        )


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers to `digits` significant figures; text escaped."""
    if missing(value):
        return ""
    if pd.api.types.is_number(value) and not pd.api.types.is_bool(value):
        return number(value, digits)
    return escape(str(value))


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _metric_cell(row: pd.Series, metric: str, notes: Notes) -> str:
    cell = MetricCell.of(row, metric)
    if cell.mean is None:
        return notes.na(cell.reason)
    if cell.half_width is None:
        return f'{fmt(cell.mean)} <span class="muted" title="one cycle: no interval">(n=1)</span>'
    return f'{fmt(cell.mean)} <span class="muted">± {fmt(cell.half_width, 3)}</span>'


def configurations_section(study: StudyData, summary: pd.DataFrame, notes: Notes) -> str:
    swept = study.swept_keys
    headers = ["#", "backend", "model", *map(escape, swept), "runs ok / planned"]
    headers += [f"{escape(BY_COLUMN[m].label)} ({escape(BY_COLUMN[m].unit)})" for m in IN_REPORT]
    headers.append(f"CV &gt; {CV_FLAG_PCT:g} %")
    rows = []
    for _, row in summary.iterrows():
        cells = [str(int(row["config_index"])), fmt(row["backend"]), fmt(row["model"])]
        cells += [fmt(row[key]) for key in swept]
        cells.append(f"{int(row['runs_completed'])} / {int(row['runs_planned'])}")
        cells += [_metric_cell(row, m, notes) for m in IN_REPORT]
        flagged = [BY_COLUMN[m].label for m in row["high_cv_metrics"].split(",") if m]
        cells.append(
            f'<span class="flag">{"<br>".join(map(escape, flagged))}</span>' if flagged else "no"
        )
        rows.append(cells)
    first_metric = 4 + len(swept)
    numeric = set(range(first_metric, first_metric + len(IN_REPORT)))
    return (
        '<section id="configurations"><h2>Results by configuration</h2>'
        "<p>Mean over completed cycles ± half-width of the 95 % confidence interval (seeded "
        "percentile bootstrap of the mean, 10 000 resamples). Full statistics per metric are in "
        "<code>summary.csv</code>; one row per run in <code>results.csv</code> / "
        "<code>results.parquet</code>.</p>" + _table(headers, rows, numeric) + "</section>"
    )


def plots_section(plots: list[Plot]) -> str:
    parts = ['<section id="plots"><h2>Plots</h2>']
    for plot in plots:
        if plot.figure is None:
            parts.append(
                f'<p class="plot-missing"><strong>{escape(plot.title)}</strong>: '
                f'<span class="na">n/a</span>: {escape(plot.reason or "")}</p>'
            )
            continue
        data = base64.b64encode(render(plot.figure, "png")).decode("ascii")
        parts.append(
            f'<figure id="plot-{escape(plot.name)}"><img alt="{escape(plot.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{escape(plot.title)}</figcaption>'
            "</figure>"
        )
    parts.append("</section>")
    return "".join(parts)


def failures_section(study: StudyData) -> str:
    rows = [
        [
            escape(run.planned.run_id),
            escape(run.outcome),
            fmt(run.record.exit_code if run.record else None),
            fmt(run.error) or '<span class="muted">no error recorded</span>',
        ]
        for run in study.runs
        if run.result is None
    ]
    body = (
        _table(["run", "outcome", "exit code", "error"], rows)
        if rows
        else "<p>Every planned run completed.</p>"
    )
    return (
        f'<section id="failures"><h2>Failed and unfinished runs ({len(rows)})</h2>{body}</section>'
    )


def warnings_section(study: StudyData) -> str:
    rows = [
        [escape(run.planned.run_id), escape(w.code), escape(w.message)]
        for run in study.completed
        for w in (run.result.warnings if run.result else [])
    ]
    body = (
        _table(["run", "warning", "message"], rows)
        if rows
        else "<p>No quality warning was raised.</p>"
    )
    return f'<section id="warnings"><h2>Quality warnings ({len(rows)})</h2>{body}</section>'


def images_section(runs: pd.DataFrame) -> str:
    columns = ["backend", "image_ref", "image_id", "image_digest"]
    images = runs[columns].drop_duplicates().dropna(subset=["image_ref"])
    rows = [
        [
            fmt(r["backend"]),
            fmt(r["image_ref"]),
            f"<code>{fmt(r['image_id'])}</code>",
            f"<code>{fmt(r['image_digest'])}</code>"
            if not missing(r["image_digest"])
            else '<span class="muted">none: image built locally</span>',
        ]
        for _, r in images.iterrows()
    ]
    body = (
        _table(["backend", "image", "image ID", "repo digest"], rows)
        if rows
        else ("<p>No run recorded an image.</p>")
    )
    return f'<section id="images"><h2>Images</h2>{body}</section>'


def environment_section(study: StudyData) -> str:
    results = [run.result for run in study.completed if run.result is not None]
    env = results[0].environment
    gpus = sorted({gpu.name for r in results for gpu in r.environment.gpus}) or ["none"]
    rows = [
        ["device", escape(env.device)],
        ["GPUs", escape(", ".join(gpus))],
        ["NVIDIA driver", fmt(env.driver_version) or "none"],
        ["CUDA", fmt(env.cuda_version) or "none"],
        ["CPU", f"{escape(env.cpu_model)} ({env.cpu_count} cores)"],
        ["OS", escape(env.os)],
        ["Python", escape(env.python_version)],
        ["engine", f"{escape(env.backend_engine)} {fmt(env.backend_engine_version)}"],
        ["torch / transformers", f"{fmt(env.torch_version)} / {fmt(env.transformers_version)}"],
        ["llem", escape(env.llem_version)],
        ["hosts", escape(", ".join(sorted({r.environment.hostname for r in results})))],
    ]
    methods = [
        ["GPU energy", sorted({r.energy.gpu_source for r in results})],
        ["CPU energy", sorted({r.energy.cpu_source for r in results})],
        ["latency", sorted({r.latency.method for r in results})],
        ["FLOPs", sorted({r.flops.method for r in results})],
    ]
    rows += [[f"method: {name}", escape(", ".join(values))] for name, values in methods]
    note = "<p class=muted>As reported by the first completed run's container.</p>"
    return f'<section id="environment"><h2>Environment</h2>{note}{_table(["", ""], rows)}</section>'


def study_file_section(study: StudyData) -> str:
    text = study.study_file
    body = f"<pre>{escape(text)}</pre>" if text is not None else "<p>No study.yaml was kept.</p>"
    return f'<section id="study-file"><h2>Study file</h2>{body}</section>'


def notes_section(notes: Notes) -> str:
    if not notes.reasons:
        return ""
    items = "".join(
        f'<li id="note-{i}">{escape(reason)}</li>' for i, reason in enumerate(notes.reasons, 1)
    )
    return f'<section id="notes"><h2>Notes: why figures are n/a</h2><ol>{items}</ol></section>'


def build_report(study: StudyData, run_id: str | None = None) -> str:
    require_results(study)
    runs = runs_frame(study)
    summary = summary_frame(study, runs)
    notes = Notes()
    record = study.manifest
    counts = runs["outcome"].value_counts().to_dict()
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    header = (
        f"<h1>{escape(record.study_name)}</h1>"
        f'<section id="overview"><p class="muted">study <code>{escape(record.study_id)}</code> · '
        f"created {escape(record.created_at)} · status {escape(record.status)} · llem "
        f"{escape(record.llem_version)}</p><p>{len(study.runs)} runs planned over "
        f"{len(summary)} configurations: {escape(states)}.</p></section>"
    )
    body = "".join(
        [
            header,
            configurations_section(study, summary, notes),
            plots_section(study_plots(study, runs, summary, run_id)),
            failures_section(study),
            warnings_section(study),
            images_section(runs),
            environment_section(study),
            study_file_section(study),
            notes_section(notes),
        ]
    )
    title = escape(f"llem report: {record.study_name} ({record.study_id})")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{title}</title><style>{CSS}</style></head>'
        f"<body>{body}</body></html>\n"
    )


def write_report(study_dir: Path, output: Path | None = None, run_id: str | None = None) -> Path:
    """Write the study's report (default `<study_dir>/report.html`); returns its path."""
    study = load_study_results(study_dir)
    path = Path(output) if output is not None else Path(study_dir) / REPORT_FILE
    atomic_write_text(path, build_report(study, run_id))
    return path
