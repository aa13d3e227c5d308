"""Host paths a study file names (model folders, prompt files): how they are told and resolved."""

from __future__ import annotations

from pathlib import Path


def host_path(path: str, study_file_dir: Path) -> Path:
    """A path from the study file: absolute, `~/...`, or relative to the study file's folder."""
    candidate = Path(path).expanduser()
    return (candidate if candidate.is_absolute() else study_file_dir / candidate).resolve()


def looks_like_path(model: str) -> bool:
    """A hub id is `org/name`; a path starts with `/`, `./`, `../` or `~`."""
    return model.startswith(("/", "./", "../", "~"))
