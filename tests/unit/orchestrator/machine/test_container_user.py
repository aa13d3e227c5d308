"""The containers' user and process limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llenergymeasure.orchestrator.machine.container_user import (
    ContainerUser,
    engine_process_limits,
)


def test_engine_limits_stay_within_the_process_and_the_kernel():
    import resource

    limits = engine_process_limits()
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert limits["nofile"] in (nofile_hard, -1)
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert 0 < limits["nproc"] <= pid_max


def test_the_container_user_is_the_invoker_unless_the_invoker_is_root() -> None:
    user = ContainerUser.for_invoker("10001:10002")
    if os.geteuid() == 0:
        assert (user.uid, user.gid) == (10001, 10002) and not user.is_invoker
    else:
        assert (user.uid, user.gid) == (os.geteuid(), os.getegid()) and user.is_invoker
    assert user.spec == f"{user.uid}:{user.gid}" and user.uid != 0


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders over needs root")
def test_root_hands_writable_folders_to_the_container_user(tmp_path: Path) -> None:
    user = ContainerUser(10001, 10001)
    (tmp_path / "cache" / "hub").mkdir(parents=True)
    (tmp_path / "cache" / "hub" / "weights").write_text("w")
    user.hand_over(tmp_path / "cache")
    assert (tmp_path / "cache").stat().st_uid == 10001
    assert (tmp_path / "cache" / "hub").stat().st_uid == 0  # never recursive
    (tmp_path / "cache" / "hub" / "weights").unlink()  # still root's to remove


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders over needs root")
def test_a_folder_swapped_for_a_link_is_not_handed_over(tmp_path: Path) -> None:
    user = ContainerUser(10001, 10001)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "cache").symlink_to(outside)
    with pytest.raises(OSError):  # ELOOP / ENOTDIR: O_NOFOLLOW refuses the link
        user.hand_over(tmp_path / "cache")
    assert outside.stat().st_uid == 0
