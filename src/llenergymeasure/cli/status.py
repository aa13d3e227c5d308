"""`llem status STUDY_DIR`: the manifest as a table, one row per run, and the study's images."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.orchestrator.display import Display, shown
from llenergymeasure.orchestrator.executors.base import executor_class
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger
from llenergymeasure.orchestrator.machine.image_lock import LockedImage, load_lock
from llenergymeasure.study.folder import StudyPaths, trusted_study_dir
from llenergymeasure.study.manifest import load_manifest, manifest_path
from llenergymeasure.study.manifest_models import RunRecord

STUDY_DIR = typer.Argument(..., help="The study folder.")


def status(
    study_dir: Path = STUDY_DIR,
    as_json: bool = typer.Option(
        False, "--json", help="The manifest (study, runs) and the study's images as JSON."
    ),
) -> None:
    """Show the study's images (its study.lock.yaml) and each run's status, outcome, attempts,
    duration, error and image (repo digest, or image ID for a local build).

    A study on a cluster that no llem follows has its ended jobs collected first."""
    trusted_study_dir(study_dir)
    if not manifest_path(study_dir).is_file():
        raise UserError(f"{study_dir}: no manifest.jsonl here", hint="give a study folder")
    kind = load_manifest(study_dir).executor
    display = Display(Console(stderr=True, highlight=False, soft_wrap=True))
    try:
        collected = executor_class(kind).collect_detached(study_dir, display)
        if collected is not None:
            display.note(f"{kind}: {collected} ended job(s) collected")
    except UserError as error:  # an attached llem follows it, or the cluster does not answer
        display.note(f"{kind} jobs not collected: {error}")
    record = load_manifest(study_dir)
    _gpus_still_changed(record.study_id, display)
    lock_file = study_dir / StudyPaths.STUDY_LOCK
    images = load_lock(lock_file, os.geteuid()).images if lock_file.is_file() else None
    if as_json:
        data = record.model_dump(mode="json")
        data["images"] = (
            {backend: image.model_dump(mode="json") for backend, image in images.items()}
            if images is not None
            else None
        )
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console(highlight=False)
    counts = Counter(run.status for run in record.runs.values())
    console.print(
        shown(
            f"{record.study_id}: {record.status}; "
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        )
    )
    if images is None:
        console.print("images: no study.lock.yaml in this folder (each run names its own below)")
    for backend, image in sorted((images or {}).items()):
        console.print(shown(f"image for {backend}: {_image_line(image)}"))
    table = Table()
    table.add_column("run", no_wrap=True)
    jobs = any(run.executor_job_id for run in record.runs.values())
    for name in ("status", "outcome", "attempts", "duration s", "exit"):
        table.add_column(name)
    if jobs:
        table.add_column("job")
        table.add_column("node")
    table.add_column("image", no_wrap=True)
    table.add_column("error", overflow="fold")
    for run in sorted(record.runs.values(), key=lambda r: r.run_index):
        table.add_row(
            shown(run.run_id),
            run.status,
            run.outcome or "",
            str(run.attempts),
            f"{run.duration_s:.1f}" if run.duration_s is not None else "",
            "" if run.exit_code is None else str(run.exit_code),
            *((run.executor_job_id or "", run.node or "") if jobs else ()),
            shown(_run_image(run)),
            shown(((run.error_type or "") + (": " + run.error if run.error else ""))[:80]),
        )
    console.print(table)


def _image_line(image: LockedImage) -> str:
    engine = f", engine {image.engine} {image.engine_version or ''}" if image.engine else ""
    digest = image.repo_digest or "no repo digest (a local build)"
    return f"{image.ref} {image.image_id} {digest}{engine}".rstrip()


def _run_image(run: RunRecord) -> str:
    """The repo digest, else the image ID: short enough for a column, long enough to compare."""
    if run.image_digest:
        name, _, digest = run.image_digest.partition("@")
        return f"{name}@{short_id(digest)}"
    return short_id(run.image_id) if run.image_id else ""


def _gpus_still_changed(study_id: str, display: Display) -> None:
    """GPU settings this study's runs left changed on this host (an llem killed with -9), said,
    not put back: status reads; the next run on those GPUs, or `llem gpus restore`, puts them
    back under the GPU's lock."""
    try:
        left = [e for e in GpuLedger().entries() if e.by.study_id == study_id]
    except UserError as error:  # an unreadable ledger is named, status still shows the study
        display.note(f"GPU settings not checked: {error.message}")
        return
    for entry in left:
        display.note(f"still changed on this host: {entry.describe()}")
    if left:
        display.note("`llem gpus restore` puts them back (or the next llem run on those GPUs)")
