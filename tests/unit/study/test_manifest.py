"""The manifest journal: replay, torn last lines, truncation on reopen, O(1) appends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.factories import run_record, study_record
from llenergymeasure.study.manifest import Manifest, load_manifest, manifest_path
from llenergymeasure.study.manifest_models import StudyRecord


def _record(n: int) -> StudyRecord:
    runs = {
        f"{i:04d}_abcdef01_c0": run_record(run_id=f"{i:04d}_abcdef01_c0", run_index=i)
        for i in range(n)
    }
    return study_record(study_id="s_20260101T000000_abcdef01", runs=runs)


def test_create_update_and_load(tmp_path: Path) -> None:
    with Manifest.create(tmp_path, _record(3)) as manifest:
        manifest.update_run("0001_abcdef01_c0", status="running", attempts=1)
        manifest.update_run("0001_abcdef01_c0", status="completed", outcome="completed")
        manifest.set_status("completed")
    loaded = load_manifest(tmp_path)
    assert loaded.status == "completed"
    assert loaded.runs["0001_abcdef01_c0"].status == "completed"
    assert loaded.runs["0001_abcdef01_c0"].attempts == 1
    assert loaded.runs["0000_abcdef01_c0"].status == "pending"
    assert len(loaded.runs) == 3


def test_invalid_transition_is_rejected_and_not_written(tmp_path: Path) -> None:
    with Manifest.create(tmp_path, _record(1)) as manifest:
        size = manifest_path(tmp_path).stat().st_size
        with pytest.raises(ValueError):
            manifest.update_run("0000_abcdef01_c0", status="exploded")
    assert manifest_path(tmp_path).stat().st_size == size


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1, max_value=400))
def test_torn_tail_is_ignored_then_cut_on_reopen(tmp_path_factory, cut: int) -> None:
    folder = tmp_path_factory.mktemp("m")
    with Manifest.create(folder, _record(2)) as manifest:
        manifest.update_run("0000_abcdef01_c0", status="completed", outcome="completed")
    path = manifest_path(folder)
    whole = path.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    torn_at = last_start + min(cut, len(whole) - last_start - 1)
    path.write_bytes(whole[:torn_at])  # a kill -9 in the middle of the last write
    # the torn line was the completion: the run is back to its previous state
    assert load_manifest(folder).runs["0000_abcdef01_c0"].status == "pending"
    with Manifest.open(folder) as manifest:
        assert path.read_bytes() == whole[:last_start]
        manifest.update_run("0001_abcdef01_c0", status="running")
    assert load_manifest(folder).runs["0001_abcdef01_c0"].status == "running"


def test_journal_without_header_is_an_error(tmp_path: Path) -> None:
    manifest_path(tmp_path).write_text("")
    with pytest.raises(ValueError, match="header"):
        load_manifest(tmp_path)


def test_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_manifest(tmp_path)


def test_append_writes_one_line_per_transition(tmp_path: Path) -> None:
    with Manifest.create(tmp_path, _record(1)) as manifest:
        before = manifest_path(tmp_path).read_text().count("\n")
        for _ in range(5):
            manifest.update_run("0000_abcdef01_c0", status="running")
    assert manifest_path(tmp_path).read_text().count("\n") == before + 5
    assert os.path.getsize(manifest_path(tmp_path)) > 0
