"""`llem run --resume` trusts nothing on disk it did not check: it never adopts another user's
study folder (nor one others may write), runs a plan.json only once it is a plan of the study
file, and never rebuilds a manifest's search trial from outside the declared space into a run.
Real study folders, manifests and plans; the simulated executor where runs are started."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helpers.results import Figures
from helpers.scheduler import stub_preflight
from helpers.simulated import search_run, search_study, trial_lines
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.workdir import run_dir_name
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.planned import planned_study
from llenergymeasure.orchestrator.schedule.preflight import Preflight, RunOptions
from llenergymeasure.orchestrator.schedule.study_folder import locate_study, open_study
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest, manifest_path
from llenergymeasure.study.search_space import cells_of

OTHER_UID = 12345
DESIGN = "a" * 64


class Notes:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


# which folder --resume continues ------------------------------------------------------------------


def pre_for(tmp_path: Path) -> Any:
    study_file = tmp_path / "study.yaml"
    study_file.write_text("model: m\n")
    study = SimpleNamespace(name="s", output_dir="results", source_path=study_file, base_path=None)
    return SimpleNamespace(
        study=study, planned=SimpleNamespace(path=study_file), design_hash=DESIGN
    )


def planned_folder(tmp_path: Path) -> Path:
    folder = layout.create_study_dir(tmp_path / "results", "s", DESIGN, None, None)
    StudyPaths(folder).write_plan([])
    return folder


def chown_tree(folder: Path, uid: int) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)


def test_resume_never_adopts_another_users_folder_of_the_same_name(tmp_path: Path) -> None:
    theirs = planned_folder(tmp_path)
    chown_tree(theirs, OTHER_UID)
    before = {p: p.stat().st_mtime_ns for p in theirs.rglob("*")}
    notes = Notes()
    found, new = locate_study(pre_for(tmp_path), RunOptions(resume=True), notes)
    assert new and found != theirs and found.parent == theirs.parent
    assert found.stat().st_uid == os.geteuid()
    skipped = next(note for note in notes.notes if note.startswith("--resume skips"))
    assert f"{theirs} belongs to uid {OTHER_UID}, not to you" in skipped
    assert {p: p.stat().st_mtime_ns for p in theirs.rglob("*")} == before


def test_resume_continues_the_own_folder_behind_a_newer_foreign_one(tmp_path: Path) -> None:
    ours = planned_folder(tmp_path)
    theirs = planned_folder(tmp_path)  # newer (the next second)
    assert theirs.name > ours.name
    chown_tree(theirs, OTHER_UID)
    notes = Notes()
    found, new = locate_study(pre_for(tmp_path), RunOptions(resume=True), notes)
    assert (found, new) == (ours, False)
    assert any(f"skips {theirs} belongs to uid {OTHER_UID}" in note for note in notes.notes)


def test_resume_never_adopts_a_folder_others_may_write(tmp_path: Path) -> None:
    shared = planned_folder(tmp_path)
    shared.chmod(0o777)
    notes = Notes()
    found, new = locate_study(pre_for(tmp_path), RunOptions(resume=True), notes)
    assert new and found != shared
    assert any(f"{shared} may be written by others (mode 0777)" in note for note in notes.notes)


# the plan a resumed folder runs -----------------------------------------------------------------


def grid(tmp_path: Path, **execution: Any) -> Preflight:
    study = StudyConfig.model_validate(
        {
            "name": "g",
            "defaults": {"model": "stub:m", "gpu_count": 0},
            "sweep": {"n_prompts": [1, 2]},
            "execution": {"n_cycles": 2, **execution},
        }
    )
    return stub_preflight(planned_study(tmp_path / "study.yaml", study))


def started(tmp_path: Path, pre: Preflight) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    open_study(folder, True, pre, Notes()).manifest.close()  # type: ignore[arg-type]
    return folder


def resume(folder: Path, pre: Preflight) -> Any:
    opened = open_study(folder, False, pre, Notes())  # type: ignore[arg-type]
    opened.manifest.close()
    return opened


def test_a_changed_plan_json_is_refused_naming_its_first_difference(tmp_path: Path) -> None:
    pre = grid(tmp_path)
    folder = started(tmp_path, pre)
    plan_file = folder / StudyPaths.PLAN
    runs = json.loads(plan_file.read_text())
    runs[1]["config"]["n_prompts"] = 5000  # its run id and config hash left as they were
    plan_file.write_text(json.dumps(runs))
    with pytest.raises(UserError) as caught:
        resume(folder, pre)
    message = str(caught.value)
    assert f"{plan_file} is not a plan of {tmp_path / 'study.yaml'}" in message
    assert f"run {runs[1]['run_id']}: its configuration differs from the study file's" in message
    assert "n_prompts: 5000 in plan.json, 2 from the study file" in message


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda runs: runs.append(dict(runs[0], run_index=4)), "is planned twice"),
        (lambda runs: runs.__setitem__(slice(None), runs[::-1]), "has index 3 at position 0"),
        (
            lambda runs: runs.__setitem__(slice(None), [r for r in runs if r["config_index"] == 0]),
            "configuration 1 of the study file is not in it",
        ),
    ],
)
def test_a_plan_json_with_runs_the_study_file_does_not_plan_is_refused(
    tmp_path: Path, change: Any, says: str
) -> None:
    pre = grid(tmp_path)
    folder = started(tmp_path, pre)
    plan_file = folder / StudyPaths.PLAN
    runs = json.loads(plan_file.read_text())
    change(runs)
    for position, run in enumerate(runs):  # keep the run ids well formed
        if says != "has index 3 at position 0":
            run["run_index"] = position
            run["run_id"] = run_dir_name(position, run["config_hash"], run["cycle"])
    plan_file.write_text(json.dumps(runs))
    with pytest.raises(UserError, match=says):
        resume(folder, pre)


def test_a_resume_keeps_the_recorded_order_and_cycles_of_an_unchanged_design(
    tmp_path: Path,
) -> None:
    """`execution:` is not the design: a study file now run in another order, or over more
    cycles, resumes its folder's plan as recorded."""
    folder = started(tmp_path, grid(tmp_path, cycle_order="interleaved"))
    recorded = StudyPaths(folder).read_plan()
    opened = resume(folder, grid(tmp_path, cycle_order="sequential", n_cycles=3))
    assert opened.plan == recorded


def test_a_dangling_manifest_link_in_a_resumed_folder_creates_nothing(tmp_path: Path) -> None:
    pre = grid(tmp_path)
    folder = started(tmp_path, pre)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest_path(folder).unlink()
    manifest_path(folder).symlink_to(elsewhere / "made-by-root")
    with pytest.raises(UserError, match=r"manifest\.jsonl: is a symbolic link"):
        resume(folder, pre)
    assert list(elsewhere.iterdir()) == []


# a search's trials from the manifest ------------------------------------------------------------


def flat(swept: dict[str, Any]) -> Figures:
    return Figures(tokens_per_s=100.0, j_per_token=0.5)


def test_a_manifest_trial_outside_the_search_space_is_refused_never_run(tmp_path: Path) -> None:
    study = search_study(
        {
            "objective": {"minimize": "energy.j_per_output_token"},
            "space": {"n_prompts": {"low": 1, "high": 9}},
            "trials": 3,
            "confirm": {"top": 0},
        }
    )
    first = search_run(tmp_path, study, flat)
    assert first.run() == 0
    folder = tmp_path / "study"
    # a line written into the journal: a trial the sampler could never have asked for, with
    # a run id and config hash that match its parameters
    plan = StudyPaths(folder).read_plan()
    made = cells_of(plan)[0].configure({"n_prompts": 50})  # type: ignore[arg-type]
    assert made.config_hash is not None
    run_id = run_dir_name(3, made.config_hash, 0)
    line = {
        "kind": "trial",
        "cell": 0,
        "number": len(trial_lines(folder)),
        "params": {"n_prompts": 50},
        "config_hash": made.config_hash,
        "run_id": run_id,
        "run_index": 3,
    }
    with open(manifest_path(folder), "a") as journal:
        journal.write(json.dumps(line) + "\n")
    with pytest.raises(UserError) as caught:
        search_run(tmp_path, study, flat, study_dir=folder)
    assert "trial 0.3: n_prompts=50 is outside the search space (integers 1..9)" in str(
        caught.value
    )
    assert run_id not in load_manifest(folder).runs  # never queued, never recorded as a run


def test_a_search_space_widened_in_plan_json_is_refused(tmp_path: Path) -> None:
    study = search_study(
        {
            "objective": {"minimize": "energy.j_per_output_token"},
            "space": {"n_prompts": {"low": 1, "high": 9}},
            "trials": 2,
            "confirm": {"top": 0},
        }
    )
    assert search_run(tmp_path, study, flat).run() == 0
    plan_file = tmp_path / "study" / StudyPaths.PLAN
    plan = json.loads(plan_file.read_text())
    plan["search"]["space"]["n_prompts"]["high"] = 5000
    plan_file.write_text(json.dumps(plan))
    with pytest.raises(UserError) as caught:
        search_run(tmp_path, study, flat, study_dir=tmp_path / "study")
    assert (
        "its search differs from the study file's at search.space.n_prompts.high: 5000 in "
        "plan.json, 9 from the study file"
    ) in str(caught.value)
