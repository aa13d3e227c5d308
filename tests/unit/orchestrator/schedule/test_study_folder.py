"""Which study folder `llem run` runs in: with --resume the newest of the same name and design;
where the design changed, a new folder, and the note says which folder holds the other one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.schedule.preflight import RunOptions
from llenergymeasure.orchestrator.schedule.study_folder import locate_study
from llenergymeasure.study.folder import StudyPaths

OLD, NEW = "a" * 64, "b" * 64


class Notes:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def pre_for(tmp_path: Path, design_hash: str) -> SimpleNamespace:
    study_file = tmp_path / "study.yaml"
    study_file.write_text("model: m\n")
    study = SimpleNamespace(name="s", output_dir="results", source_path=study_file, base_path=None)
    return SimpleNamespace(
        study=study, planned=SimpleNamespace(path=study_file), design_hash=design_hash
    )


def planned_folder(tmp_path: Path, design_hash: str) -> Path:
    folder = layout.create_study_dir(tmp_path / "results", "s", design_hash, None, None)
    (folder / StudyPaths.PLAN).write_text("[]")
    return folder


def test_resume_continues_the_same_design(tmp_path: Path) -> None:
    earlier = planned_folder(tmp_path, OLD)
    notes = Notes()
    found, new = locate_study(pre_for(tmp_path, OLD), RunOptions(resume=True), notes)  # type: ignore[arg-type]
    assert (found, new) == (earlier, False) and notes.notes == []


def test_resume_of_a_changed_design_names_the_folder_it_did_not_continue(tmp_path: Path) -> None:
    earlier = planned_folder(tmp_path, OLD)
    notes = Notes()
    found, new = locate_study(pre_for(tmp_path, NEW), RunOptions(resume=True), notes)  # type: ignore[arg-type]
    assert new and found != earlier and found.name.endswith(NEW[:8])
    (note,) = notes.notes
    assert note.startswith("nothing to resume for this design: starting a new study folder")
    assert f"{earlier.name} has another design" in note
    assert layout.find_resumable(tmp_path / "results", "s", None).folder == earlier  # new: no plan
