"""`llem images build|list|lock`: the project's images and the study's image lock."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.contract.backends import BACKEND_TABLE
from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.imagebuild.cpu_image import build_cpu_image
from llenergymeasure.version import __version__

images_app = typer.Typer(help="Build, list and lock the project's images.", no_args_is_help=True)

TARGETS = ("cpu", "vllm-cpu", *BACKEND_TABLE, "fetch")
TARGETS_ARG = typer.Argument(
    None, help="Images to build: " + ", ".join(TARGETS) + ". Default: cpu."
)
STUDY_FILE = typer.Argument(..., help="The study file (YAML).")


@images_app.command("build")
def build(
    targets: list[str] = TARGETS_ARG,
    base: str | None = typer.Option(
        None,
        "--base",
        help="Base image instead of the default (CPU images: one with python3; GPU images: the "
        "pinned upstream image in images/<backend>/Dockerfile).",
    ),
    force: bool = typer.Option(
        False, "--force", help="cpu, vllm-cpu, fetch: rebuild even when the inputs match."
    ),
) -> None:
    """Build images; cpu, vllm-cpu and fetch (llem's hub downloader, otherwise built when a
    study first downloads) are skipped when one with the same inputs exists."""
    from llenergymeasure.imagebuild.backend_images import (
        GPU_BACKENDS,
        VLLM_CPU,
        build_gpu_image,
        build_vllm_cpu_image,
    )

    chosen = list(dict.fromkeys(targets or ["cpu"]))
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        raise UserError(
            f"no image named {', '.join(map(repr, unknown))}", hint=f"one of {', '.join(TARGETS)}"
        )
    for target in chosen:
        typer.echo(f"== {target}")
        if target == "cpu":
            build_cpu_image(base=base, say=typer.echo, force=force)
        elif target == VLLM_CPU:
            build_vllm_cpu_image(base, typer.echo, force=force)
        elif target in GPU_BACKENDS:
            build_gpu_image(target, base, typer.echo)
        elif target == "fetch":
            import docker

            from llenergymeasure.imagebuild.fetch_image import ensure_fetch_image

            tag = ensure_fetch_image(docker.from_env(), typer.echo, base, force=force)
            typer.echo(f"image: {tag} is current")


@images_app.command("list")
def list_images() -> None:
    """The project's images: backend, tag, ID, repo digest, size and engine version."""
    from llenergymeasure.orchestrator.machine.engine import connect
    from llenergymeasure.orchestrator.machine.image_inventory import project_images

    rows = project_images(connect())
    if not rows:
        typer.echo("no llenergymeasure/* images; build one with `llem images build`")
        return
    table = Table("backend", "tag", "image ID", "repo digest", "size MB", "engine", "created")
    for row in rows:
        table.add_row(
            row.backend or "",
            escape(row.tag),
            row.image_id.removeprefix("sha256:")[:12],
            escape(row.repo_digest or "none (local build)"),
            f"{row.size_mb:.0f}",
            escape(f"{row.engine or ''} {row.engine_version or ''}".strip()),
            row.created,
        )
    Console(highlight=False).print(table)


@images_app.command("lock")
def lock(
    study_file: Path = STUDY_FILE,
) -> None:
    """Write <study>.lock.yaml: backend -> image ID, repo digest and engine version."""
    from llenergymeasure.config.loader import load_study
    from llenergymeasure.orchestrator.machine.engine import connect, resolve_image
    from llenergymeasure.orchestrator.machine.image_lock import StudyLock, lock_path_for, write_lock
    from llenergymeasure.study.expand import expand

    if not study_file.is_file():
        raise UserError(f"{study_file}: no such file", hint="give the path of a study YAML file")
    study = load_study(study_file)
    backends = sorted({run.config.backend for run in expand(study).runs})
    client = connect()
    images = {
        backend: resolve_image(client, study.image_for(backend), backend).locked()
        for backend in backends
    }
    path = write_lock(
        lock_path_for(study_file),
        StudyLock(
            study_name=study.name,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            llem_version=__version__,
            images=images,
        ),
    )
    for backend, image in images.items():
        typer.echo(
            f"{backend}: {image.ref} {short_id(image.image_id)} "
            f"{image.repo_digest or 'no repo digest (local build)'} "
            f"{image.engine or ''} {image.engine_version or ''}".rstrip()
        )
    typer.echo(f"wrote {path}")
