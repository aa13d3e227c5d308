"""The study folder is as untrusted as a work folder: what another user of a shared project
space plants there never makes llem (here root, as on many GPU servers) write through a link,
create a file elsewhere, copy a root-only file into a report, or adopt their folder on
`--resume` (README: Security). Real `llem` commands on real studies of the fault image."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from helpers.integration import llem, study_dirs, write_study
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest, manifest_path

pytestmark = pytest.mark.docker

SECRET = "root-only-secret-91d4\n"
OTHER_UID = 12345


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


def _study(tmp_path: Path) -> tuple[Path, Path]:
    """A finished study of one run, made under umask 000 (worse than a group space's 002)."""
    study = write_study(tmp_path, ["fault:ok-1"])
    proc = llem("run", str(study), cwd=tmp_path, timeout=180, umask=0)
    assert proc.returncode == 0, proc.stderr
    (study_dir,) = study_dirs(tmp_path)
    return study, study_dir


def _refused(proc: subprocess.CompletedProcess, folder: Path, problem: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"{folder} {problem}" in proc.stderr and "Traceback" not in proc.stderr


def test_a_study_folder_is_private_whatever_the_umask(tmp_path, fault_image) -> None:
    _, study_dir = _study(tmp_path)
    assert stat.S_IMODE(study_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((study_dir / StudyPaths.EXPERIMENTS).stat().st_mode) == 0o700
    for name in (StudyPaths.PLAN, StudyPaths.MANIFEST, StudyPaths.STUDY, StudyPaths.RESULTS_CSV):
        assert not (study_dir / name).stat().st_mode & 0o022, name


def test_a_group_writable_study_folder_is_refused_by_status_and_results(
    tmp_path, fault_image
) -> None:
    """A folder an older llem made under a group umask: a group member planted links in it."""
    secret = _secret(tmp_path)
    _, study_dir = _study(tmp_path)
    study_dir.chmod(0o775)
    (study_dir / ".results.parquet.tmp").symlink_to(secret)
    (study_dir / StudyPaths.REPORT).symlink_to(secret)
    for command in (
        ("status", str(study_dir)),
        ("results", "write", str(study_dir)),
        ("results", "show", str(study_dir)),
        ("results", "report", str(study_dir)),
        ("results", "plot", str(study_dir)),
        ("results", "export", str(study_dir), "--format", "parquet"),
    ):
        proc = llem(*command, cwd=tmp_path)
        _refused(proc, study_dir, "may be written by others (mode 0775)")
        assert f"chmod -R go-w {study_dir}" in proc.stderr
    assert secret.read_text() == SECRET


def test_another_users_study_folder_is_refused_naming_the_copy(tmp_path, fault_image) -> None:
    _, study_dir = _study(tmp_path)
    os.chown(study_dir, OTHER_UID, OTHER_UID)
    for command in (("status", str(study_dir)), ("results", "show", str(study_dir))):
        proc = llem(*command, cwd=tmp_path)
        _refused(proc, study_dir, f"belongs to uid {OTHER_UID}, not to you")
        assert f"cp -r {study_dir}" in proc.stderr


def test_a_planted_temporary_name_is_not_written_through(tmp_path, fault_image) -> None:
    """Links left in a folder that was once writable by others: the tables are written beside
    them, through new files of random names, never through them."""
    secret = _secret(tmp_path)
    _, study_dir = _study(tmp_path)
    for name in (".results.parquet.tmp", StudyPaths.RESULTS_PARQUET, StudyPaths.SUMMARY_CSV):
        (study_dir / name).unlink(missing_ok=True)
        (study_dir / name).symlink_to(secret)
    proc = llem("results", "write", str(study_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert secret.read_text() == SECRET and stat.S_IMODE(secret.stat().st_mode) == 0o600
    for name in (StudyPaths.RESULTS_PARQUET, StudyPaths.SUMMARY_CSV):
        assert stat.S_ISREG(os.lstat(study_dir / name).st_mode)


def test_a_linked_study_yaml_is_not_copied_into_the_report(tmp_path, fault_image) -> None:
    secret = _secret(tmp_path)
    _, study_dir = _study(tmp_path)
    (study_dir / StudyPaths.STUDY).unlink()
    (study_dir / StudyPaths.STUDY).symlink_to(secret)
    proc = llem("results", "report", str(study_dir), cwd=tmp_path)
    assert proc.returncode == 2 and "study.yaml: is a symbolic link" in proc.stderr, proc.stderr
    report = study_dir / StudyPaths.REPORT
    assert not report.exists() or "root-only-secret" not in report.read_text()
    assert "root-only-secret" not in proc.stdout + proc.stderr


def test_resume_never_adopts_another_users_folder_of_the_same_name(tmp_path, fault_image) -> None:
    study, theirs = _study(tmp_path)
    for path in [theirs, *theirs.rglob("*")]:
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
    journal = manifest_path(theirs).read_bytes()
    proc = llem("run", str(study), "--resume", cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert f"--resume skips {theirs} belongs to uid {OTHER_UID}" in proc.stdout + proc.stderr
    (ours,) = [folder for folder in study_dirs(tmp_path) if folder != theirs]
    assert ours.stat().st_uid == os.geteuid()
    assert [run.status for run in load_manifest(ours).runs.values()] == ["completed"]
    assert manifest_path(theirs).read_bytes() == journal  # theirs untouched


def test_resume_with_a_dangling_manifest_link_creates_no_file_elsewhere(
    tmp_path, fault_image
) -> None:
    study, study_dir = _study(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest_path(study_dir).unlink()
    manifest_path(study_dir).symlink_to(elsewhere / "created-by-root")
    proc = llem("run", str(study), "--resume", cwd=tmp_path, timeout=180)
    assert proc.returncode == 2 and "manifest.jsonl: is a symbolic link" in proc.stderr, proc.stderr
    assert list(elsewhere.iterdir()) == []
