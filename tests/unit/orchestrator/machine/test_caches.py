"""llem's cache folders are its own or refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.container_user import ContainerUser


def test_llems_cache_folders_are_its_own_or_refused(tmp_path: Path, monkeypatch) -> None:
    from llenergymeasure.orchestrator.machine import caches

    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem"))
    user = ContainerUser.for_invoker("10001:10001")
    made = caches.owned_folder(caches.llem_hub_cache(), user)
    assert made.is_dir() and made.stat().st_uid in (os.geteuid(), user.uid)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "llem" / "tensorrt-engines").symlink_to(elsewhere)
    with pytest.raises(UserError, match="is not a folder \\(a link\\?\\)"):
        caches.owned_folder(caches.engine_cache_dir("tensorrt"), user)
    assert elsewhere.stat().st_uid == os.geteuid()  # never handed over through the link
    if os.geteuid() == 0:
        foreign = tmp_path / "llem" / "fetch"
        foreign.mkdir()
        os.chown(foreign, 4242, 4242)
        with pytest.raises(UserError, match="owned by uid 4242"):
            caches.owned_folder(foreign, user)


def test_each_image_writes_an_engine_cache_of_its_own(tmp_path: Path, monkeypatch) -> None:
    from llenergymeasure.orchestrator.machine import caches

    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem"))
    monkeypatch.delenv("LLEM_ENGINE_CACHE", raising=False)
    user = ContainerUser(10001, 10001)
    first = caches.image_engine_cache("tensorrt", "sha256:" + "a" * 64, user)
    second = caches.image_engine_cache("tensorrt", "sha256:" + "b" * 64, user)
    root = caches.engine_cache_dir("tensorrt")
    assert root is not None and first == root / ("a" * 64) and second == root / ("b" * 64)
    for folder in (first, second):
        info = folder.stat()
        assert info.st_mode & 0o777 == 0o700
        assert info.st_uid == (user.uid if os.geteuid() == 0 else os.geteuid())
    assert root.stat().st_uid == os.geteuid()  # the folder of all images stays llem's
    assert caches.image_engine_cache("pytorch", "sha256:" + "a" * 64, user) is None
    (root / ("c" * 64)).symlink_to(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        caches.image_engine_cache("tensorrt", "sha256:" + "c" * 64, user)


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders over needs root")
def test_a_fetch_writes_its_repository_only_while_it_runs_and_one_llem_at_a_time(
    tmp_path: Path, monkeypatch
) -> None:
    import fcntl

    from llenergymeasure.orchestrator.machine import caches

    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem"))
    user = ContainerUser(10001, 10001)
    repo = caches.llem_hub_cache() / "models--org--m"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "b").write_text("w")
    outside = tmp_path / "outside"
    outside.write_text("mine")
    (repo / "escape").symlink_to(outside)
    with caches.writable_for_fetch(["models--org--m"], user) as folders:
        assert folders == [repo, caches.llem_hub_cache() / ".locks" / "models--org--m"]
        for path in (repo, repo / "blobs", repo / "blobs" / "b", folders[1]):
            assert path.lstat().st_uid == 10001
        assert (repo / "escape").lstat().st_uid == 10001 and outside.stat().st_uid == 0
        fd = os.open(caches.llem_hub_cache() / caches.FETCH_LOCK, os.O_RDWR)
        with pytest.raises(BlockingIOError):  # a second llem waits for this fetch
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    for path in (repo, repo / "blobs", repo / "blobs" / "b", repo / "escape", folders[1]):
        assert path.lstat().st_uid == 0  # taken back: no container writes it between fetches
    assert caches.llem_hub_cache().stat().st_uid == 0
