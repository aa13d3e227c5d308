"""The study folder a run writes: created (or found again with --resume), its plan, its image
lock, and its manifest opened with a record for every planned run.

Every study folder gets `study.lock.yaml`, the images it runs on, in the format of
`llem images lock`; beside the folder's copy `study.yaml` it is that copy's lock, so
`llem run <study-folder>/study.yaml --locked` reruns a study on the same images or names the
one that differs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure import __version__
from llenergymeasure.contract.workdir import utc_now
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.image_lock import StudyLock, differences, load_lock, write_lock
from llenergymeasure.orchestrator.locks import open_own_file, try_flock
from llenergymeasure.orchestrator.preflight import Preflight, RunOptions
from llenergymeasure.study.folder import STUDY_LOCK_FILE, load_plan, write_plan
from llenergymeasure.study.manifest import Manifest, manifest_path
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.untrusted import printable


@dataclass(frozen=True)
class StudyFolder:
    """A study folder opened for a run: its manifest and its planned runs as it recorded them."""

    manifest: Manifest
    plan: list[PlannedRun]

    @property
    def path(self) -> Path:
        return self.manifest.path.parent


def locate_study(pre: Preflight, options: RunOptions, say: Display) -> tuple[Path, bool]:
    """The study folder to run in, and whether it is new: with --resume the newest one of the
    same design, else (or when there is none) a new one. Nothing in it is written yet but the
    copies of the study's files: the caller takes its writer lock first."""
    study = pre.study
    output_dir = layout.output_dir_for(pre.planned.path, study.output_dir)
    if options.resume:
        found = layout.find_resumable(output_dir, study.name, pre.design_hash)
        if found is not None:
            return found, False
        say.note("nothing to resume for this design: starting a new study folder")
    created = layout.create_study_dir(
        output_dir, study.name, pre.design_hash, study.source_path, study.base_path
    )
    return created, True


def open_study(study_dir: Path, new: bool, pre: Preflight, say: Display) -> StudyFolder:
    """The study folder opened for the run: its plan, image lock and manifest (a record for
    every planned run). The caller holds its writer lock (`writer_lock`): opening the
    manifest may repair a torn last line, which only its one writer may do."""
    if new:
        write_plan(study_dir, pre.plan.runs)
        plan = pre.plan.runs
    else:
        plan = load_plan(study_dir)
    _lock_study_images(study_dir, pre, say)
    if manifest_path(study_dir).exists():
        manifest = Manifest.open(study_dir)
    else:
        record = StudyRecord(
            study_id=study_dir.name,
            study_name=pre.study.name,
            design_hash=pre.design_hash,
            created_at=utc_now(),
            llem_version=__version__,
            source_dir=str(pre.planned.source_dir),
        )
        manifest = Manifest.create(study_dir, record)
    missing = [pending_record(run) for run in plan if run.run_id not in manifest.record.runs]
    if missing:  # a kill while the journal was being started
        manifest.add_runs(missing)
    if manifest.record.status != "running":
        manifest.set_status("running")
    return StudyFolder(manifest, plan)


def _lock_study_images(study_dir: Path, pre: Preflight, say: Display) -> None:
    """Write the study's `study.lock.yaml` (also when a resumed folder lacks one); on resume,
    warn when the images now differ from it: the manifest records each run's own image."""
    current = {backend: image.locked() for backend, image in pre.images.items()}
    lock_file = study_dir / STUDY_LOCK_FILE
    if lock_file.is_file():
        for line in differences(load_lock(lock_file).images, current):
            say.note(f"warning: the images differ from {lock_file}: {line}")
        return
    lock = StudyLock(
        study_name=pre.study.name, created_at=utc_now(), llem_version=__version__, images=current
    )
    write_lock(lock_file, lock, origin="`llem run` at the start of this study")


def pending_record(run: PlannedRun) -> RunRecord:
    """The manifest record of a planned run not yet started."""
    return RunRecord(
        run_id=run.run_id,
        run_index=run.run_index,
        config_hash=run.config_hash,
        cycle=run.cycle,
        backend=run.config.backend,
    )


def runs_to_do(manifest: Manifest, plan: list[PlannedRun], retry_failed: bool) -> list[PlannedRun]:
    """Completed runs never repeat; running/interrupted/pending run; failed only on request."""
    todo = []
    for run in plan:
        status = manifest.record.runs[run.run_id].status
        if status == "completed" or (status == "failed" and not retry_failed):
            continue
        todo.append(run)
    return todo


WRITER_LOCK_FILE = ".llem-writer.lock"


@contextmanager
def writer_lock(study_dir: Path) -> Iterator[None]:
    """The study folder's manifest has one writer at a time: the llem that runs (or follows)
    it, or `llem status` collecting ended Slurm jobs. Taken before the manifest is opened. An
    flock: the kernel drops it when the holder ends, however it ends. Held: UserError naming
    the holder's pid."""
    path = study_dir / WRITER_LOCK_FILE
    fd = open_own_file(path)
    try:
        if not try_flock(fd, path):
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"another llem (pid {printable(holder)}) is running or following the study "
                f"{study_dir}",
                hint="let it finish, or stop it (Ctrl+C) first",
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
