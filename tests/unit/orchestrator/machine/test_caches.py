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
