"""One self-contained HTML file per study: tables, plots (embedded PNG), environment, images,
the study file, warnings and failures. No script, no external resource: it opens anywhere.

This module gathers the data; `templates/report.html.j2` lays it out (Jinja2, every value
escaped by autoescape).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from llenergymeasure.contract.workdir import atomic_write_text
from llenergymeasure.results.audit import (
    INSTRUMENT_SHARE_NOTE_PCT,
    counter_integral_line,
    valid_of_judged,
    validity_audit,
)
from llenergymeasure.results.cells import (
    NOT_REPORTED,
    Footnotes,
    MetricCell,
    interval,
    missing,
    number,
)
from llenergymeasure.results.load import StudyData, load_study_results, require_results
from llenergymeasure.results.metrics import BY_COLUMN, IN_REPORT, for_study
from llenergymeasure.results.plot_base import Plot
from llenergymeasure.results.plots import render, study_plots
from llenergymeasure.results.race_view import (
    difference_text,
    fresh_runs,
    front_lines,
    race_rows,
    round_lines,
    runs_spent,
)
from llenergymeasure.results.search import search_view
from llenergymeasure.results.stats import CV_FLAG_PCT
from llenergymeasure.results.tables import STAGE_COLUMNS, runs_frame, summary_frame
from llenergymeasure.study.folder import StudyPaths

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


@dataclass(frozen=True)
class NotedCell:
    """A metric cell of the report: the cell, and its footnote's number when it is n/a."""

    mean: float | None
    half_width: float | None
    reason: str | None
    note: int | None
    instrument_heavy: bool = False  # the instrument is more than a third of the CI


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("llenergymeasure.results", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    env.filters["num"] = _num
    return env


def _num(value: Any, digits: int = 4) -> str:
    """Numbers to `digits` significant figures; anything else as text; missing: empty."""
    if missing(value):
        return ""
    if pd.api.types.is_number(value) and not pd.api.types.is_bool(value):
        return number(value, digits)
    return str(value)


def row_keys(study: StudyData, summary: pd.DataFrame) -> list[str]:
    """What names a configuration row: its swept values, and a staged run's stage settings."""
    stage = [k for k in STAGE_COLUMNS[:3] if k in summary.columns and summary[k].notna().any()]
    return [*study.swept_keys, *stage]


def _configurations(study: StudyData, summary: pd.DataFrame, notes: Footnotes) -> list[dict]:
    rows = []
    for _, row in summary.iterrows():
        cells = []
        for metric in _report_metrics(study):
            cell = MetricCell.of(row, metric)
            note = notes.number(cell.reason or NOT_REPORTED) if cell.mean is None else None
            share = row.get(f"{metric}.instrument_share_pct")
            heavy = not missing(share) and share > INSTRUMENT_SHARE_NOTE_PCT
            cells.append(NotedCell(cell.mean, cell.half_width, cell.reason, note, heavy))
        rows.append(
            {
                "index": int(row["config_index"]),
                "backend": row["backend"],
                "model": row["model"],
                "swept": [row[key] for key in row_keys(study, summary)],
                "completed": int(row["runs_completed"]),
                "planned": int(row["runs_planned"]),
                "valid": valid_of_judged(row, " / "),
                "invalid_reasons": row["invalid_reasons"],
                "cells": cells,
                "flagged": [BY_COLUMN[m].label for m in row["high_cv_metrics"].split(",") if m],
            }
        )
    return rows


def _plots(plots: list[Plot]) -> list[dict[str, Any]]:
    return [
        {
            "name": plot.name,
            "title": plot.title,
            "reason": plot.reason or "",
            "png": (
                base64.b64encode(render(plot.figure, "png")).decode("ascii")
                if plot.figure is not None
                else None
            ),
        }
        for plot in plots
    ]


def _environment_rows(study: StudyData) -> list[list[str]]:
    results = [run.result for run in study.completed if run.result is not None]
    env = results[0].environment
    gpus = sorted({gpu.name for r in results for gpu in r.environment.gpus}) or ["none"]
    rows = [
        ["device", env.device],
        ["GPUs", ", ".join(gpus)],
        ["NVIDIA driver", env.driver_version or "none"],
        ["CUDA", env.cuda_version or "none"],
        ["CPU", f"{env.cpu_model} ({env.cpu_count} cores)"],
        ["OS", env.os],
        ["Python", env.python_version],
        ["engine", f"{env.backend_engine} {env.backend_engine_version or ''}".rstrip()],
        ["torch / transformers", f"{env.torch_version or ''} / {env.transformers_version or ''}"],
        ["llem", env.llem_version],
        ["hosts", ", ".join(sorted({r.environment.hostname for r in results}))],
    ]
    methods = [
        ["GPU energy", sorted({r.energy.gpu_source for r in results})],
        ["CPU energy", sorted({r.energy.cpu_source for r in results})],
        ["latency", sorted({r.latency.method for r in results})],
        ["FLOPs", sorted({r.flops.method for r in results})],
    ]
    return rows + [[f"method: {name}", ", ".join(values)] for name, values in methods]


def _images(runs: pd.DataFrame) -> list[dict[str, Any]]:
    columns = ["backend", "image_ref", "image_id", "image_digest"]
    images = runs[columns].drop_duplicates().dropna(subset=["image_ref"])
    return [
        {
            "backend": r["backend"],
            "ref": r["image_ref"],
            "id": r["image_id"],
            "digest": None if missing(r["image_digest"]) else r["image_digest"],
        }
        for _, r in images.iterrows()
    ]


def build_report(study: StudyData, run_id: str | None = None) -> str:
    require_results(study)
    runs = runs_frame(study)
    summary = summary_frame(study, runs)
    notes = Footnotes()
    audit = validity_audit(runs)
    counts = runs["outcome"].value_counts().to_dict()
    template = _environment().get_template("report.html.j2")
    return (
        template.render(
            css=Markup(CSS),  # our own constant: escaping would break its quoted font names
            study=study.manifest,
            n_runs=len(study.runs),
            states=", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
            swept_keys=row_keys(study, summary),
            metrics=[BY_COLUMN[m] for m in _report_metrics(study)],
            cv_flag_pct=f"{CV_FLAG_PCT:g}",
            configurations=_configurations(study, summary, notes),
            search=_search(study),
            plots=_plots(study_plots(study, runs, summary, run_id)),
            failures=[
                [
                    run.planned.run_id,
                    run.outcome,
                    _num(run.record.exit_code if run.record else None),
                    run.error or "no error recorded",
                ]
                for run in study.runs
                if run.result is None
            ],
            invalid=[
                [run.run_id, "" if run.stage is None else run.stage, run.validity.detail]
                for run in audit.not_valid
            ],
            unmeasured=audit.not_measured,
            not_judged=audit.not_judged,
            counter_integral=counter_integral_line(runs),
            warnings=[
                [run.planned.run_id, w.code, w.message]
                for run in study.completed
                for w in (run.result.warnings if run.result else [])
            ],
            images=_images(runs),
            environment=_environment_rows(study),
            study_file=study.study_file,
            notes=notes.reasons,
        )
        + "\n"
    )


def write_report(study_dir: Path, output: Path | None = None, run_id: str | None = None) -> Path:
    """Write the study's report (default `<study_dir>/report.html`); returns its path."""
    study = load_study_results(study_dir)
    path = Path(output) if output is not None else Path(study_dir) / StudyPaths.REPORT
    atomic_write_text(path, build_report(study, run_id))
    return path


def _search(study: StudyData) -> dict[str, Any] | None:
    """The search section: per cell its stop, trial table, race (candidates, rounds), verdict
    and runs spent."""
    view = search_view(study)
    if view is None:
        return None
    search = view.search
    keys = list(search.space)
    goals = [g.metric for g in search.goals]
    cells = []
    for cell in view.cells:
        trials = [
            [
                t.number,
                *(t.params.get(k, "") for k in keys),
                t.state,
                *map(_num, t.values),
                *map(_num, t.constraint_values),
                t.reason or "",
            ]
            for t in cell.trials
        ]
        race = [
            [
                row.candidate.config_hash[:8],
                *(row.candidate.params.get(k, "") for k in keys),
                fresh_runs(row.candidate),
                *(interval(s.mean, s.ci_low, s.ci_high) for s in row.candidate.objectives),
                "; ".join(difference_text(d) for d in row.differences or []),
                row.status,
            ]
            for row in race_rows(search, cell)
        ]
        front = [
            [t.number, *(t.params.get(k, "") for k in keys), *map(_num, t.values)]
            for t in (cell.pareto(search) if len(goals) > 1 else [])
        ]
        cells.append(
            {
                "title": f"cell {cell.cell}"
                + (
                    f" ({', '.join(f'{k}={v}' for k, v in cell.swept.items())})"
                    if cell.swept
                    else ""
                ),
                "stopped": cell.stopped or "still asking",
                "verdict": cell.verdict.text if cell.confirmed else None,
                "runs": runs_spent(search, cell),
                "trial_headers": [
                    "#",
                    *keys,
                    "state",
                    *goals,
                    *(str(c) for c in search.constraints),
                    "why not feasible",
                ],
                "trials": trials,
                "race_headers": [
                    "config",
                    *keys,
                    "fresh runs",
                    *(f"{g}{_unit(g)} mean [95 % CI]" for g in goals),
                    "vs leader [95 % CI]" + ("; per objective" if len(goals) > 1 else ""),
                    "status",
                ],
                "race": race,
                "rounds": round_lines(search, cell),
                "race_front": front_lines(search, cell),
                "front_headers": ["#", *keys, *goals],
                "front": front,
            }
        )
    return {
        "margin": f"{search.confirm.tolerance:.0%}",
        "max_runs": search.confirm.max_runs,
        "goals": ", ".join(f"{g.direction} {g.metric}" for g in search.goals),
        "constraints": "; ".join(str(c) for c in search.constraints) or "none",
        "sampler": f"{search.sampler} (seed {search.seed})",
        "budget_changes": [change.text() for change in view.budgets],
        "warm": view.warm_lines(),
        "cells": cells,
    }


def _unit(metric: str) -> str:
    return f" ({BY_COLUMN[metric].unit})" if metric in BY_COLUMN else ""


def _report_metrics(study: StudyData) -> list[str]:
    return [m.column for m in for_study(IN_REPORT, study.has_serving)]
