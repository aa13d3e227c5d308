"""The study folder as untrusted as a work folder: created private whatever the umask, read and
written only where it is the caller's and no one else may write it, every file in it read
without following a link and written through a new file renamed into place (study/folder.py,
study/manifest.py, contract/workdir.py). Run as root, as llem often is: a link planted in the
study folder must not make root read or write a file it points to."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from helpers.factories import study_record
from helpers.results import standard_study
from llenergymeasure.api import load_results
from llenergymeasure.contract.workdir import atomic_write_bytes
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.machine.image_lock import load_lock
from llenergymeasure.results.export import write_frame
from llenergymeasure.results.load import load_study_results
from llenergymeasure.study.folder import StudyPaths, read_own, trusted_study_dir
from llenergymeasure.study.manifest import Manifest, load_manifest, manifest_path
from llenergymeasure.study.untrusted import UntrustedFile

SECRET = "root-only-secret-5e1c\n"
OTHER_UID = 12345


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file outside the study folder: what a planted link points to."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


@pytest.fixture
def umask_000() -> Iterator[None]:
    """The loosest umask: a group project space's 002, and worse."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_study_folder_and_its_folders_are_private_whatever_the_umask(
    tmp_path: Path, umask_000: None
) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text("model: m\n")
    folder = layout.create_study_dir(tmp_path / "out", "s", "a" * 64, study_file, None)
    assert mode_of(folder) == 0o700
    assert mode_of(folder / StudyPaths.EXPERIMENTS) == 0o700
    assert mode_of(StudyPaths(folder).own_folder(StudyPaths.PLOTS)) == 0o700
    # files are never writable by others either, and read back as the study folder's own
    assert not mode_of(folder / StudyPaths.STUDY) & 0o022
    StudyPaths(folder).write_plan([])
    assert not mode_of(folder / StudyPaths.PLAN) & 0o022
    assert StudyPaths(folder).read_plan() == []
    with Manifest.create(folder, study_record()):
        pass
    assert not mode_of(manifest_path(folder)) & 0o022
    assert trusted_study_dir(folder) == folder


def test_a_study_folder_others_may_write_is_refused_naming_the_fix(tmp_path: Path) -> None:
    folder = standard_study(tmp_path)
    folder.chmod(0o775)  # made by an older llem under a group umask
    with pytest.raises(UserError) as caught:
        trusted_study_dir(folder)
    assert f"{folder} may be written by others (mode 0775)" in str(caught.value)
    assert f"chmod -R go-w {folder}" in (caught.value.hint or "")
    with pytest.raises(UserError, match="may be written by others"):
        load_study_results(folder)  # every `llem results` command and the library's load_results
    folder.chmod(0o755)
    (folder / StudyPaths.EXPERIMENTS).chmod(0o777)
    with pytest.raises(UserError, match=r"experiments may be written by others \(mode 0777\)"):
        load_study_results(folder)


def test_another_users_study_folder_is_refused_naming_the_copy_to_make(tmp_path: Path) -> None:
    folder = standard_study(tmp_path)
    os.chown(folder, OTHER_UID, OTHER_UID)
    with pytest.raises(UserError) as caught:
        load_study_results(folder)
    assert f"belongs to uid {OTHER_UID}, not to you (uid {os.geteuid()})" in str(caught.value)
    assert f"cp -r {folder} DEST" in (caught.value.hint or "")
    with pytest.raises(UserError, match=f"belongs to uid {OTHER_UID}"):
        load_results(folder)  # the library's reader


@pytest.mark.parametrize(
    ("plant", "says"),
    [
        ("link", "is a symbolic link; llem does not follow it"),
        ("foreign", f"is owned by uid {OTHER_UID}"),
        ("group-writable", "has mode 0664: others may write it"),
    ],
)
def test_a_study_folder_file_is_read_only_as_a_plain_file_of_its_own(
    tmp_path: Path, secret: Path, plant: str, says: str
) -> None:
    path = tmp_path / StudyPaths.PLAN
    if plant == "link":
        path.symlink_to(secret)
    else:
        path.write_text("[]")
        if plant == "foreign":
            os.chown(path, OTHER_UID, OTHER_UID)
        else:
            path.chmod(0o664)
    with pytest.raises(UntrustedFile, match=says):
        read_own(path, 1 << 20)


def test_a_dangling_manifest_link_creates_no_file_elsewhere(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere" / "created-by-root"
    elsewhere.parent.mkdir()
    manifest_path(folder).symlink_to(elsewhere)
    with pytest.raises((UserError, FileExistsError)):
        Manifest.create(folder, study_record())
    with pytest.raises(UserError, match=r"manifest\.jsonl: is a symbolic link"):
        Manifest.open(folder)
    assert not elsewhere.exists() and not os.listdir(elsewhere.parent)


def test_a_manifest_linked_to_another_file_is_neither_read_nor_appended_to(
    tmp_path: Path, secret: Path
) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    manifest_path(folder).symlink_to(secret)
    with pytest.raises(UserError, match="is a symbolic link"):
        load_manifest(folder)
    with pytest.raises(UserError, match="is a symbolic link"):
        Manifest.open(folder)
    assert secret.read_text() == SECRET


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_a_table_is_never_written_through_a_planted_name(
    tmp_path: Path, secret: Path, fmt: str
) -> None:
    """The fixed temporary name an older llem used, and the file's own name, both planted."""
    path = tmp_path / f"results.{fmt}"
    (tmp_path / f".results.{fmt}.tmp").symlink_to(secret)
    path.symlink_to(secret)
    write_frame(pd.DataFrame({"run_id": ["0000_abcdef01_c0"], "x": [1.0]}), path, fmt)  # type: ignore[arg-type]
    assert secret.read_text() == SECRET
    assert stat.S_ISREG(os.lstat(path).st_mode)  # the link was replaced, not followed
    assert (tmp_path / f".results.{fmt}.tmp").is_symlink()  # and the old temp name not used


def test_the_one_atomic_writer_replaces_a_link_and_leaves_no_temporary_file(
    tmp_path: Path, secret: Path, umask_000: None
) -> None:
    target = tmp_path / "pareto.png"
    target.symlink_to(secret)
    atomic_write_bytes(target, b"\x89PNG")
    assert secret.read_text() == SECRET
    assert target.read_bytes() == b"\x89PNG" and mode_of(target) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto.png", "secret.txt"]


def test_a_linked_study_yaml_is_refused_not_read(tmp_path: Path, secret: Path) -> None:
    folder = standard_study(tmp_path)
    (folder / StudyPaths.STUDY).unlink()
    (folder / StudyPaths.STUDY).symlink_to(secret)
    with pytest.raises(UserError) as caught:
        load_study_results(folder)  # what the report copies the study file from
    assert "study.yaml: is a symbolic link" in str(caught.value)
    assert "root-only-secret" not in str(caught.value)


def test_a_study_folders_image_lock_is_read_only_as_its_own(tmp_path: Path, secret: Path) -> None:
    lock = tmp_path / StudyPaths.STUDY_LOCK
    lock.symlink_to(secret)
    with pytest.raises(UserError, match="is a symbolic link"):
        load_lock(lock, owner=os.geteuid())
    lock.unlink()
    lock.write_text("schema_version: 1\n")
    lock.chmod(0o666)
    with pytest.raises(UserError, match="others may write it"):
        load_lock(lock, owner=os.geteuid())
