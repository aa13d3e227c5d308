"""Where study folders go and how they are named; their format is `study.folder.StudyPaths`.

A study id is `<name>_<UTC YYYYmmddTHHMMSS>_<design_hash8>`: `<name>` keeps letters, digits,
`.`, `_` and `-` of the study's name; other characters become `-`. `llem run --resume` picks
the newest folder of the same name and design hash that has a plan, among the caller's own
that no one else may write (`study_folder_problem`): in a shared output folder another user's
folder of that name is skipped, never adopted. A study folder's own copy `study.yaml`, run
again, puts its new folder beside that study folder (where the original went), whatever its
relative `output_dir` said.

A new study folder and its `experiments/` are made 0700 whatever the umask (`StudyPaths` says
why); the copies of the study's files are written whole, through a new file renamed into place.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure.contract.workdir import atomic_write_bytes
from llenergymeasure.errors import UserError
from llenergymeasure.study.folder import StudyPaths, study_folder_problem
from llenergymeasure.study.manifest import load_manifest
from llenergymeasure.study.untrusted import UntrustedFile, new_private_folder

_STAMP = "%Y%m%dT%H%M%S"


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-") or "study"


def study_id_for(name: str, design_hash: str, now: datetime) -> str:
    return f"{safe_name(name)}_{now.astimezone(timezone.utc).strftime(_STAMP)}_{design_hash[:8]}"


def is_study_copy(study_file: Path) -> bool:
    """A study folder's own copy of its study file (run again to reproduce the study)."""
    return (
        study_file.name == StudyPaths.STUDY
        and (study_file.resolve().parent / StudyPaths.PLAN).is_file()
    )


def output_dir_for(study_file: Path, output_dir: str) -> Path:
    """The absolute folder that holds a study file's study folders (the engine bind-mounts only
    absolute paths): `output_dir` relative to the study file's folder, except for a study
    folder's own copy, whose new study folders go beside that study folder."""
    folder = study_file.resolve().parent
    if is_study_copy(study_file):
        return folder.parent
    return (folder / Path(output_dir).expanduser()).resolve()


def source_dir_for(study_file: Path) -> Path:
    """Where relative model and prompt paths of a study file resolve from: its own folder, or,
    for a study folder's copy, the folder of the study file that study was run from."""
    folder = study_file.resolve().parent
    if is_study_copy(study_file):
        with contextlib.suppress(OSError, ValueError, UserError, UntrustedFile):
            recorded = load_manifest(folder).source_dir
            if recorded is not None:
                return Path(recorded)
    return folder


def create_study_dir(
    output_dir: Path,
    name: str,
    design_hash: str,
    study_file: Path | None,
    base_file: Path | None,
) -> Path:
    """Make a new, uniquely named study folder (0700) with verbatim copies of the study's
    files."""
    output_dir.mkdir(parents=True, exist_ok=True)
    while True:
        study_dir = output_dir / study_id_for(name, design_hash, datetime.now(timezone.utc))
        try:
            new_private_folder(study_dir)
            break
        except FileExistsError:
            time.sleep(0.2)  # the id has one-second resolution; the next second is free
    new_private_folder(study_dir / StudyPaths.EXPERIMENTS)
    if study_file is not None:
        atomic_write_bytes(study_dir / StudyPaths.STUDY, study_file.read_bytes())
    if base_file is not None:
        atomic_write_bytes(study_dir / base_file.name, base_file.read_bytes())
    return study_dir


@dataclass(frozen=True)
class Resumable:
    """The study folder `--resume` continues (None: none), and the folders of that name it
    skipped, each with why (another user's, or writable by others)."""

    folder: Path | None
    skipped: list[str] = field(default_factory=list)


def find_resumable(output_dir: Path, name: str, design_hash: str | None) -> Resumable:
    """The newest study folder of this name and design hash (None: of any design) that got as
    far as its plan, of the caller's own that no one else may write."""
    if not output_dir.is_dir():
        return Resumable(None)
    design = re.escape(design_hash[:8]) if design_hash is not None else "[0-9a-f]{8}"
    pattern = re.compile(rf"^{re.escape(safe_name(name))}_(\d{{8}}T\d{{6}})_{design}$")
    found = sorted(
        (
            (match.group(1), path)
            for path in output_dir.iterdir()
            if (match := pattern.match(path.name))
        ),
        reverse=True,
    )
    skipped = []
    for _, path in found:
        problem = study_folder_problem(path, follow=False)
        if problem is not None:
            skipped.append(problem)
        elif (path / StudyPaths.PLAN).is_file():
            return Resumable(path, skipped)
    return Resumable(None, skipped)
