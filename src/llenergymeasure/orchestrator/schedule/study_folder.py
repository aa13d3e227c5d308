"""The study folder a run writes: created (or found again with --resume), its plan, its image
lock, and its manifest opened with a record for every planned run.

Every study folder gets `study.lock.yaml`, the images it runs on, in the format of
`llem images lock`; beside the folder's copy `study.yaml` it is that copy's lock, so
`llem run <study-folder>/study.yaml --locked` reruns a study on the same images or names the
one that differs.

`--resume` continues only a folder of the caller's own that no one else may write (another
user's folder of the same name is skipped, and the note says so), and only once its plan.json
is a plan of the study file (`study.resume`): nothing a file on disk says is run unchecked.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from llenergymeasure.contract.workdir import atomic_write_text, utc_now
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.machine.image_lock import (
    StudyLock,
    differences,
    load_lock,
    write_lock,
)
from llenergymeasure.orchestrator.schedule.preflight import Preflight, RunOptions
from llenergymeasure.study.folder import StudyPaths, trusted_study_dir
from llenergymeasure.study.manifest import Manifest, manifest_path
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.models import PlannedRun, SearchPlan
from llenergymeasure.study.resume import plan_difference
from llenergymeasure.version import __version__


@dataclass(frozen=True)
class StudyFolder:
    """A study folder opened for a run: its manifest and its planned runs as it recorded them
    (a search: its plan, and the runs its manifest records so far)."""

    manifest: Manifest
    plan: list[PlannedRun]
    search: SearchPlan | None = None

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
        resumable = layout.find_resumable(output_dir, study.name, pre.design_hash)
        for problem in resumable.skipped:
            say.note(
                f"--resume skips {problem}: it continues only a study folder of your own that "
                "no one else may write (one of yours that no one else wrote in: `chmod -R go-w` "
                "it and --resume again)"
            )
        if resumable.folder is not None:
            return resumable.folder, False
        other = layout.find_resumable(output_dir, study.name, None).folder
        say.note(
            "nothing to resume for this design: starting a new study folder"
            + (
                f" ({other.name} has another design: the study's models, defaults, sweep or "
                "search changed since; --resume continues an unchanged design only)"
                if other is not None
                else ""
            )
        )
    created = layout.create_study_dir(
        output_dir, study.name, pre.design_hash, study.source_path, study.base_path
    )
    if study.source_path is None:  # a study built in Python: its copy says it as a file would
        text = io.StringIO()
        YAML(typ="safe", pure=True).dump(study.as_document(), text)
        atomic_write_text(created / StudyPaths.STUDY, text.getvalue())
    return created, True


def open_study(study_dir: Path, new: bool, pre: Preflight, say: Display) -> StudyFolder:
    """The study folder opened for the run: its plan, image lock and manifest (a record for
    every planned run). The caller holds its writer lock (`writer_lock`): opening the
    manifest may repair a torn last line, which only its one writer may do."""
    paths = StudyPaths(study_dir)
    expected = pre.planned.search or pre.plan.runs
    if new:
        written = expected
        paths.write_plan(written)
    else:
        trusted_study_dir(study_dir)
        written = paths.read_plan()
        difference = plan_difference(written, expected)
        if difference is not None:
            raise UserError(
                f"{study_dir / StudyPaths.PLAN} is not a plan of {pre.planned.path}: {difference}",
                hint="--resume continues the study file's own plan: run the study file it "
                "was started from, or start the study again without --resume",
            )
    _lock_study_images(study_dir, pre, say)
    if os.path.lexists(manifest_path(study_dir)):
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
    search = written if isinstance(written, SearchPlan) else None
    plan = written if not isinstance(written, SearchPlan) else []
    missing = [pending_record(run) for run in plan if run.run_id not in manifest.record.runs]
    if missing:  # a kill while the journal was being started
        manifest.add_runs(missing)
    if manifest.record.status != "running":
        manifest.set_status("running")
    manifest.set_executor(pre.study.execution.executor.kind)
    return StudyFolder(manifest, plan, search)


def _lock_study_images(study_dir: Path, pre: Preflight, say: Display) -> None:
    """Write the study's `study.lock.yaml` (also when a resumed folder lacks one); on resume,
    warn when the images now differ from it: the manifest records each run's own image."""
    current = {backend: image.locked() for backend, image in pre.images.items()}
    lock_file = study_dir / StudyPaths.STUDY_LOCK
    if lock_file.is_file():
        for line in differences(load_lock(lock_file, owner=os.geteuid()).images, current):
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
