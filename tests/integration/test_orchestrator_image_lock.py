"""`llem images list|lock`, `llem run --locked` (pass, refuse) and a study rerun from its results
folder, on the real engine with small images: the fault image under tags of this test's own and
a one-label child of it (another image ID). Nothing is pulled."""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import docker.errors
import pytest

from helpers.integration import llem, study_dirs, write_study
from llenergymeasure.orchestrator.machine.image_lock import load_lock
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker

WIDE = {**os.environ, "COLUMNS": "300"}  # tables unabridged


@dataclass(frozen=True)
class Images:
    repo: str
    a: str  # tag of the fault image
    b: str  # tag of a child image: another ID, with engine labels
    a_id: str
    b_id: str
    study_ref: str  # the tag studies name; tests move it

    def point(self, client: docker.DockerClient, image_id: str) -> None:
        repo, tag = self.study_ref.rsplit(":", 1)
        client.images.get(image_id).tag(repo, tag)


@pytest.fixture
def images(client: docker.DockerClient, fault_image: str) -> Iterator[Images]:
    repo = f"llenergymeasure/llem-test-{uuid.uuid4().hex[:8]}"
    fault = client.images.get(fault_image)
    fault.tag(repo, "a")
    tags = [f"{repo}:a"]
    try:
        dockerfile = (
            f"FROM {repo}:a\n"
            "LABEL io.llenergymeasure.backend=pytorch io.llenergymeasure.engine=fake "
            "io.llenergymeasure.engine.version=9.9\n"
        )
        child, _ = client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=f"{repo}:b", rm=True, forcerm=True
        )
        tags.append(f"{repo}:b")
        fault.tag(repo, "study")
        tags.append(f"{repo}:study")
        yield Images(repo, f"{repo}:a", f"{repo}:b", fault.id, child.id, f"{repo}:study")
    finally:
        for tag in tags:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(tag)


def test_images_list_shows_tag_id_digest_and_engine(tmp_path, images):
    proc = llem("images", "list", cwd=tmp_path, env=WIDE)
    assert proc.returncode == 0, proc.stderr
    a_row = next(line for line in proc.stdout.splitlines() if images.a in line)
    b_row = next(line for line in proc.stdout.splitlines() if images.b in line)
    assert images.a_id.removeprefix("sha256:")[:12] in a_row
    assert "none (local build)" in a_row
    assert images.b_id.removeprefix("sha256:")[:12] in b_row
    assert "pytorch" in b_row and "fake 9.9" in b_row


def test_lock_then_locked_run_passes_and_refuses_a_moved_tag(tmp_path, client, images):
    study = write_study(tmp_path, ["fault:ok-1"], image=images.study_ref)
    no_lock = llem("run", str(study), "--locked", cwd=tmp_path)
    assert no_lock.returncode == 2 and "no lock file" in no_lock.stderr
    assert "llem images lock" in no_lock.stderr and "Traceback" not in no_lock.stderr

    locked = llem("images", "lock", str(study), cwd=tmp_path)
    assert locked.returncode == 0, locked.stderr
    lock = load_lock(tmp_path / "study.lock.yaml")
    assert lock.images["pytorch"].image_id == images.a_id
    assert lock.images["pytorch"].ref == images.study_ref

    ran = llem("run", str(study), "--locked", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "images match the lock" in ran.stdout
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    assert (run.status, run.image_id, run.image_ref) == ("completed", images.a_id, images.study_ref)

    images.point(client, images.b_id)
    refused = llem("run", str(study), "--locked", cwd=tmp_path)
    assert refused.returncode == 2
    assert "1 image(s) differ" in refused.stderr and "Traceback" not in refused.stderr
    assert f"is image {images.b_id[:19]}, the lock has {images.a_id[:19]}" in refused.stderr
    assert study_dirs(tmp_path) == [study_dir]  # nothing written


def test_rerun_from_the_results_folder_reproduces_or_says_why(tmp_path, client, images):
    study = write_study(tmp_path, ["fault:ok-1"], image=images.study_ref)
    first = llem("run", str(study), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    (original,) = study_dirs(tmp_path)
    lock_text = (original / "study.lock.yaml").read_text()
    assert lock_text.startswith("# Written by `llem run` at the start of this study")
    assert load_lock(original / "study.lock.yaml").images["pytorch"].image_id == images.a_id

    copy = original / "study.yaml"
    again = llem("run", str(copy), "--locked", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = next(d for d in study_dirs(tmp_path) if d != original)  # beside, not inside
    assert rerun.name.rsplit("_", 1)[1] == original.name.rsplit("_", 1)[1]  # same design
    (run,) = load_manifest(rerun).runs.values()
    assert (run.status, run.image_id) == ("completed", images.a_id)

    status = llem("status", str(rerun), cwd=tmp_path, env=WIDE)
    assert status.returncode == 0, status.stderr
    assert f"image for pytorch: {images.study_ref} {images.a_id}" in status.stdout
    assert images.a_id[:19] in status.stdout.split("┃ error")[1]  # the run's row

    images.point(client, images.b_id)
    differs = llem("run", str(copy), "--locked", cwd=tmp_path)
    assert differs.returncode == 2
    assert f"is image {images.b_id[:19]}, the lock has {images.a_id[:19]}" in differs.stderr

    client.images.remove(images.study_ref)
    missing = llem("run", str(copy), "--locked", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"image {images.study_ref!r} for backend 'pytorch' is not present" in missing.stderr
    assert f"wants image {images.a_id}" in missing.stderr
    # the locked image is still here under another tag: the fix says how to restore the name
    assert f"docker tag {images.a_id} {images.study_ref}" in missing.stderr
    assert len(study_dirs(tmp_path)) == 2
