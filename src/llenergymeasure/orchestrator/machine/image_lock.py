"""The image lock: `<study>.lock.yaml`, backend -> the exact image a study ran (or must run) on.

`llem images lock study.yaml` writes it next to the study file; `llem run --locked` refuses to
start when any image the study needs differs from it. Every study folder gets the lock of the
images it actually used (`study.lock.yaml` beside its copy `study.yaml`), so a study rerun from
its results folder with `--locked` runs on the same images or names the one that differs.

An image is identified by its immutable image ID; the repo digest (the registry's name for the
same content) is recorded and compared too when the image has one. Engine name and version come
from the image's labels and are recorded for the reader, never trusted over the ID.

Pure apart from reading and writing the file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.contract.workdir import atomic_write_text
from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.study.untrusted import UntrustedFile, read_bytes

if TYPE_CHECKING:
    from ruamel.yaml import YAML

LOCK_SCHEMA_VERSION = 1
LOCK_SUFFIX = ".lock.yaml"
LOCK_CAP = 1 << 20  # a few hundred bytes per backend


class LockedImage(BaseModel):
    """One backend's image, as resolved on the engine."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(description="The reference the study names, e.g. llenergymeasure/vllm:0.1.0.")
    image_id: str = Field(description="Immutable image ID, sha256:...")
    repo_digest: str | None = Field(
        None, description="name@sha256:... once pushed or pulled; null for a local-only build."
    )
    engine: str | None = Field(None, description="Inference engine, from the image's labels.")
    engine_version: str | None = None


class StudyLock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = LOCK_SCHEMA_VERSION
    study_name: str
    created_at: str = Field(description="UTC, ISO 8601.")
    llem_version: str
    images: dict[str, LockedImage] = Field(description="backend -> image.")


def lock_path_for(study_file: Path) -> Path:
    """`dir/name.yaml` -> `dir/name.lock.yaml` (any suffix is replaced)."""
    return study_file.with_name(study_file.stem + LOCK_SUFFIX)


def _yaml() -> YAML:
    from ruamel.yaml import YAML  # here: a cluster node's start loads no YAML reader

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # keep each `sha256:...` on its key's line
    return yaml


def dump_lock(lock: StudyLock, origin: str = "`llem images lock`") -> str:
    buffer = io.StringIO()
    buffer.write(
        f"# Written by {origin}: the exact images this study runs on.\n"
        "# `llem run --locked` refuses to start when any of them differs.\n"
    )
    _yaml().dump(lock.model_dump(mode="json"), buffer)
    return buffer.getvalue()


def write_lock(path: Path, lock: StudyLock, origin: str = "`llem images lock`") -> Path:
    atomic_write_text(path, dump_lock(lock, origin))
    return path


def load_lock(path: Path, owner: int | None = None) -> StudyLock:
    """Read and validate a lock file (not through a link, a regular file within its cap;
    `owner`: the uid it must have, writable by no one else: a study folder's); a missing or
    malformed one is a UserError."""
    if not path.is_file():
        raise UserError(
            f"{path}: no lock file", hint=f"write one with `llem images lock {_study_for(path)}`"
        )
    from ruamel.yaml.error import YAMLError

    try:
        text = read_bytes(path, LOCK_CAP, owner=owner, sole_writer=owner is not None)
        raw = _yaml().load(text.decode("utf-8", errors="replace"))
        lock = StudyLock.model_validate(raw)
    except UntrustedFile as error:
        raise UserError(
            f"{path}: {error.problem}; llem reads only a lock file it wrote",
            hint=f"write it again with `llem images lock {_study_for(path)}`",
        ) from None
    except YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({error})") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise UserError(
            f"{path}: {where}: {first['msg']}",
            hint=f"rewrite it with `llem images lock {_study_for(path)}`",
        ) from None
    if lock.schema_version != LOCK_SCHEMA_VERSION:
        raise UserError(
            f"{path}: lock schema_version {lock.schema_version} is not the supported "
            f"{LOCK_SCHEMA_VERSION}",
            hint=f"rewrite it with `llem images lock {_study_for(path)}`",
        )
    return lock


def _study_for(lock_path: Path) -> Path:
    name = lock_path.name
    stem = name[: -len(LOCK_SUFFIX)] if name.endswith(LOCK_SUFFIX) else lock_path.stem
    return lock_path.with_name(stem + ".yaml")


def differences(locked: dict[str, LockedImage], current: dict[str, LockedImage]) -> list[str]:
    """One line per backend whose current image is not the locked one; [] when all match.

    Only the backends in `current` (those the study needs) are checked; a backend in the lock
    that the study no longer uses is not an error.
    """
    lines = []
    for backend in sorted(current):
        now = current[backend]
        then = locked.get(backend)
        if then is None:
            lines.append(f"{backend}: not in the lock (the study now uses {now.ref})")
            continue
        if now.image_id != then.image_id:
            lines.append(
                f"{backend}: {now.ref} is image {short_id(now.image_id)}, the lock has "
                f"{short_id(then.image_id)} ({then.ref}"
                + (f", engine {then.engine} {then.engine_version}" if then.engine else "")
                + ")"
            )
        elif then.repo_digest and now.repo_digest and now.repo_digest != then.repo_digest:
            lines.append(
                f"{backend}: repo digest {now.repo_digest} differs from the locked "
                f"{then.repo_digest}"
            )
    return lines


def require_locked(lock_file: Path, current: dict[str, LockedImage]) -> StudyLock:
    """The lock, when every image the study needs matches it; else a UserError naming each."""
    lock = load_lock(lock_file)
    diffs = differences(lock.images, current)
    if diffs:
        locked_refs = " ".join(
            sorted(
                {
                    (image.repo_digest or image.ref)
                    for backend, image in lock.images.items()
                    if backend in current
                }
            )
        )
        raise UserError(
            f"--locked: {len(diffs)} image(s) differ from {lock_file}:\n  " + "\n  ".join(diffs),
            hint=(
                f"get the locked images back (docker pull / docker load {locked_refs}), or "
                f"re-lock on purpose with `llem images lock {_study_for(lock_file)}`"
            ),
        )
    return lock
