"""A node reads what it is told to run only from a study folder, `slurm/` and `slurm/jobs/` that
are its user's and writable by no one else: someone who could write the study folder could
otherwise swap `slurm/` for a folder of theirs, or a link to another."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.executors.slurm.node_job import jobs_dir


def test_a_study_folder_others_may_write_is_refused_before_any_job_is_read(
    tmp_path: Path,
) -> None:
    study = tmp_path / "study"
    study.mkdir()
    assert jobs_dir(study / "slurm").is_dir()
    study.chmod(0o777)
    with pytest.raises(UserError, match=r"may be written by others \(mode 0777\)"):
        jobs_dir(study / "slurm")


def test_a_slurm_folder_swapped_for_a_link_is_refused(tmp_path: Path) -> None:
    study, elsewhere = tmp_path / "study", tmp_path / "elsewhere"
    study.mkdir()
    (elsewhere / "jobs").mkdir(mode=0o700, parents=True)
    elsewhere.chmod(0o700)
    (study / "slurm").symlink_to(elsewhere)
    with pytest.raises(UserError, match=r"slurm is not a folder \(a symbolic link\)"):
        jobs_dir(study / "slurm")


def test_another_users_study_folder_is_refused(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    os.chown(study, 12345, 12345)
    with pytest.raises(UserError, match="belongs to uid 12345"):
        jobs_dir(study / "slurm")
