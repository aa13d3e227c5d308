"""The image lock file: round trip, validation, and what --locked compares."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.image_lock import (
    LockedImage,
    StudyLock,
    differences,
    load_lock,
    lock_path_for,
    require_locked,
    write_lock,
)

ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64


def _image(
    image_id: str = ID_A, digest: str | None = None, ref: str = "llenergymeasure/vllm:0.1.0"
):
    return LockedImage(
        ref=ref, image_id=image_id, repo_digest=digest, engine="vllm", engine_version="0.14.0"
    )


def _lock(**images: LockedImage) -> StudyLock:
    return StudyLock(
        study_name="s", created_at="2026-01-01T00:00:00Z", llem_version="0.1.0", images=images
    )


def test_lock_path_sits_next_to_the_study() -> None:
    assert lock_path_for(Path("a/b/study.yaml")) == Path("a/b/study.lock.yaml")
    assert lock_path_for(Path("x.yml")) == Path("x.lock.yaml")


def test_round_trip(tmp_path: Path) -> None:
    lock = _lock(
        vllm=_image(digest="llenergymeasure/vllm@sha256:" + "c" * 64), pytorch=_image(ID_B)
    )
    path = write_lock(tmp_path / "s.lock.yaml", lock)
    assert path.read_text().startswith("# Written by `llem images lock`")
    assert load_lock(path) == lock


def test_same_images_match() -> None:
    assert differences({"vllm": _image()}, {"vllm": _image()}) == []


def test_a_different_image_id_is_named() -> None:
    (line,) = differences({"vllm": _image(ID_A)}, {"vllm": _image(ID_B)})
    assert line.startswith("vllm: llenergymeasure/vllm:0.1.0 is image sha256:bbbb")
    assert "the lock has sha256:aaaa" in line and "engine vllm 0.14.0" in line


def test_a_different_repo_digest_is_named_even_with_the_same_id() -> None:
    then = _image(digest="r@sha256:" + "1" * 64)
    now = _image(digest="r@sha256:" + "2" * 64)
    (line,) = differences({"vllm": then}, {"vllm": now})
    assert "repo digest" in line


def test_backends_missing_from_the_lock_differ_and_unused_ones_do_not() -> None:
    assert differences({"vllm": _image(), "tensorrt": _image(ID_B)}, {"vllm": _image()}) == []
    (line,) = differences({"vllm": _image()}, {"vllm": _image(), "pytorch": _image(ID_B)})
    assert line.startswith("pytorch: not in the lock")


def test_require_locked_refuses_naming_each_image(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "s.lock.yaml", _lock(vllm=_image(ID_A), pytorch=_image(ID_A)))
    assert require_locked(path, {"vllm": _image(ID_A)}).images["vllm"].image_id == ID_A
    with pytest.raises(UserError) as caught:
        require_locked(path, {"vllm": _image(ID_B), "pytorch": _image(ID_B)})
    assert "2 image(s) differ" in caught.value.message
    assert "vllm:" in caught.value.message and "pytorch:" in caught.value.message
    assert "llem images lock" in (caught.value.hint or "")


def test_missing_and_malformed_locks_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no lock file"):
        load_lock(tmp_path / "none.lock.yaml")
    bad = tmp_path / "bad.lock.yaml"
    bad.write_text("study_name: s\nimages: {vllm: {ref: x}}\n")
    with pytest.raises(UserError, match=r"bad\.lock\.yaml: ") as caught:
        load_lock(bad)
    assert "llem images lock" in (caught.value.hint or "")
    broken = tmp_path / "broken.lock.yaml"
    broken.write_text("images: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_lock(broken)


def test_the_header_names_who_wrote_the_lock_and_ids_stay_on_one_line(tmp_path: Path) -> None:
    lock = _lock(vllm=_image(digest="llenergymeasure/vllm@sha256:" + "c" * 64))
    text = write_lock(tmp_path / "study.lock.yaml", lock, origin="`llem run`").read_text()
    assert text.startswith("# Written by `llem run`: ")
    assert f"image_id: {ID_A}\n" in text
    assert load_lock(tmp_path / "study.lock.yaml") == lock
