"""The pre-flight of `llem run`: the plan, the images by ID, and the confirmation cap."""

from __future__ import annotations

import subprocess

import pytest

from helpers.integration import llem, study_dirs, write_study
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker


def test_above_the_cap_without_a_terminal_exits_2_then_yes_runs(tmp_path, client, fault_image):
    study = write_study(
        tmp_path,
        ["fault:ok-1", "fault:ok-2", "fault:ok-3"],
        execution={"max_runs_without_confirmation": 2},
    )
    image_id = client.images.get(fault_image).id
    refused = llem("run", str(study), cwd=tmp_path, stdin=subprocess.DEVNULL)  # no terminal
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "above the 2 that run without confirmation" in refused.stderr
    assert "--yes" in refused.stderr and "Traceback" not in refused.stderr
    # the pre-flight showed the plan (as `llem plan`), the ETA and the image by ID
    assert "3 configurations x 1 cycles = 3 runs" in refused.stdout
    assert "Estimated wall time" in refused.stdout
    assert f"image for pytorch: {fault_image} {image_id}" in refused.stdout
    assert study_dirs(tmp_path) == []

    accepted = llem("run", str(study), "--yes", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    assert [r.status for r in record.runs.values()] == ["completed"] * 3
    assert {r.image_id for r in record.runs.values()} == {image_id}
