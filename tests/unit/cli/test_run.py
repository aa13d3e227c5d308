"""`llem run --dry-run` (the plan, nothing else) and `llem status` (runs and images), in process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

from helpers.cli import run_llem
from helpers.factories import run_record, study_record
from llenergymeasure.orchestrator.layout import output_dir_for
from llenergymeasure.orchestrator.machine.image_lock import LockedImage, StudyLock, write_lock
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import Manifest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "single-backend-sweep.yaml"
ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64


def llem(*args: str) -> tuple[int, str, str]:
    # no engine here: anything that tried to reach one would fail
    return run_llem(*args, DOCKER_HOST="unix:///nonexistent/docker.sock")


def _copy_example(tmp_path: Path) -> Path:
    study = tmp_path / "study.yaml"
    study.write_text(EXAMPLE.read_text())
    return study


def test_dry_run_prints_what_plan_prints_and_touches_nothing(tmp_path: Path) -> None:
    study = _copy_example(tmp_path)
    code, planned, _ = llem("plan", str(study))
    assert code == 0
    code, dry, err = llem("run", str(study), "--dry-run")
    assert (code, err) == (0, "")
    assert dry == planned and "Estimated wall time" in dry
    code, dry_json, _ = llem("run", str(study), "--dry-run", "--json")
    assert code == 0
    assert json.loads(dry_json) == json.loads(llem("plan", str(study), "--json")[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_json_without_dry_run_is_a_user_error(tmp_path: Path) -> None:
    code, _, err = llem("run", str(_copy_example(tmp_path)), "--json")
    assert code == 2 and "--json goes with --dry-run" in err


def test_a_real_run_without_an_engine_exits_2_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    study = _copy_example(tmp_path / "s")
    # the GPU locks are taken before the engine is asked: keep them out of the shared folder
    with mock.patch.dict(os.environ, {"LLEM_LOCK_DIR": str(tmp_path / "locks")}):
        code, out, err = llem("run", str(study), "--yes")
    assert code == 2 and "Docker engine is not reachable" in err and "Traceback" not in err
    assert "Estimated wall time" in out  # the plan came first
    assert sorted(p.name for p in study.parent.iterdir()) == ["study.yaml"]


def test_output_dir_is_relative_to_the_study_file_except_for_a_study_folder_copy(
    tmp_path: Path,
) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("")
    assert output_dir_for(study, "results") == tmp_path / "results"
    assert output_dir_for(study, "/abs/out") == Path("/abs/out")
    folder = tmp_path / "results" / "s_20260101T000000_abcdef01"
    folder.mkdir(parents=True)
    (folder / "study.yaml").write_text("")
    assert output_dir_for(folder / "study.yaml", "results") == folder / "results"  # no plan yet
    (folder / "plan.json").write_text("[]")
    assert output_dir_for(folder / "study.yaml", "results") == tmp_path / "results"


def _study_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "s_20260101T000000_abcdef01"
    folder.mkdir()
    header = study_record(study_id=folder.name)
    with Manifest.create(folder, header) as manifest:
        manifest.add_runs(
            [
                run_record(
                    run_id="0000_abcdef01_c0",
                    status="completed",
                    image_ref="llenergymeasure/cpu:latest",
                    image_id=ID_A,
                ),
                run_record(
                    run_id="0001_abcdef02_c0",
                    run_index=1,
                    config_hash="cd" * 32,
                    backend="vllm",
                    image_ref="llenergymeasure/vllm:0.1.0",
                    image_id=ID_B,
                    image_digest="llenergymeasure/vllm@sha256:" + "c" * 64,
                ),
            ]
        )
    return folder


def test_status_shows_each_runs_image_and_the_studys_images(tmp_path: Path) -> None:
    folder = _study_folder(tmp_path)
    with mock.patch.dict(os.environ, {"COLUMNS": "250"}):
        code, out, _ = llem("status", str(folder))
    assert code == 0
    assert "no study.lock.yaml" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert ID_A[:19] in rows["0000_abcdef01_c0"]  # no repo digest: the image ID
    assert "llenergymeasure/vllm@sha256:ccccccccccc" in rows["0001_abcdef02_c0"]
    lock = StudyLock(
        study_name="s",
        created_at="2026-01-01T00:00:00Z",
        llem_version="0.1.0",
        images={
            "pytorch": LockedImage(ref="llenergymeasure/cpu:latest", image_id=ID_A),
            "vllm": LockedImage(
                ref="llenergymeasure/vllm:0.1.0",
                image_id=ID_B,
                repo_digest="llenergymeasure/vllm@sha256:" + "c" * 64,
                engine="vllm",
                engine_version="0.14.0",
            ),
        },
    )
    write_lock(folder / StudyPaths.STUDY_LOCK, lock)
    with mock.patch.dict(os.environ, {"COLUMNS": "250"}):
        code, out, _ = llem("status", str(folder))
    assert f"image for pytorch: llenergymeasure/cpu:latest {ID_A} no repo digest" in out
    assert "engine vllm 0.14.0" in out
    code, out, _ = llem("status", str(folder), "--json")
    data = json.loads(out)
    assert code == 0 and data["images"]["vllm"]["image_id"] == ID_B
    assert data["runs"]["0000_abcdef01_c0"]["image_id"] == ID_A


def test_status_of_a_folder_without_manifest_is_a_user_error(tmp_path: Path) -> None:
    code, _, err = llem("status", str(tmp_path))
    assert code == 2 and "no manifest.jsonl" in err
