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


def _free_id() -> int:
    """A uid and gid no account or group of this host has."""
    import grp
    import pwd

    taken = {entry.pw_uid for entry in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    return next(i for i in range(424242, 10**7) if i not in taken)


def test_a_container_never_runs_as_root_or_with_group_root() -> None:
    from llenergymeasure.errors import UserError

    with pytest.raises(UserError, match="gid 0"):
        ContainerUser(10001, 0)
    with pytest.raises(UserError, match="never runs one as root"):
        ContainerUser(0, 10001)
    if os.geteuid() == 0:
        with pytest.raises(UserError, match="group root"):
            ContainerUser.for_invoker("10001:0")


def test_an_invoker_whose_group_is_root_is_refused() -> None:
    """A non-root invoker with primary group 0 (a forked child that drops its uid only)."""
    if os.geteuid() != 0:
        pytest.skip("changing uid needs root")
    uid = _free_id()
    child = os.fork()
    if child == 0:
        code = 3
        try:
            os.setgid(0)
            os.setuid(uid)
            try:
                ContainerUser.for_invoker(None)
                code = 1
            except Exception as error:
                code = 0 if "group root" in str(error) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_account_the_default_user_lacks_is_refused_with_the_fix() -> None:
    from llenergymeasure.errors import UserError
    from llenergymeasure.orchestrator.machine.container_user import check_account

    free = _free_id()
    with pytest.raises(UserError) as refused:
        check_account(free, free)
    assert f"{free}:{free} has no account on this host" in refused.value.message
    assert "useradd --system" in (refused.value.hint or "")
    assert "execution.container_user" in (refused.value.hint or "")


def test_the_default_user_must_be_an_account_nobody_logs_in_to() -> None:
    import pwd

    from llenergymeasure.errors import UserError
    from llenergymeasure.orchestrator.machine.container_user import NO_LOGIN_SHELLS, check_account

    accounts = pwd.getpwall()
    login = next(a for a in accounts if a.pw_shell not in NO_LOGIN_SHELLS)  # root's, at least
    with pytest.raises(UserError) as refused:
        check_account(login.pw_uid, login.pw_gid)
    assert f"is the login {login.pw_name!r} of this host" in refused.value.message
    system = next(a for a in accounts if a.pw_shell in NO_LOGIN_SHELLS and a.pw_uid)
    check_account(system.pw_uid, system.pw_gid)  # a system account: nobody's login


@pytest.mark.skipif(os.geteuid() != 0, reason="the container user is configurable as root only")
def test_root_takes_a_configured_user_as_given_and_the_default_only_with_an_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llenergymeasure.errors import UserError
    from llenergymeasure.orchestrator.machine import container_user

    free = _free_id()
    configured = ContainerUser.for_invoker(f"{free}:{free}")  # the operator's choice
    assert (configured.uid, configured.gid) == (free, free)
    monkeypatch.setattr(container_user, "DEFAULT_CONTAINER_USER", f"{free}:{free}")
    with pytest.raises(UserError, match="has no account"):
        ContainerUser.for_invoker(None)


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders over needs root")
def test_a_tree_handed_over_for_a_fetch_is_taken_back_without_following_links(
    tmp_path: Path,
) -> None:
    user = ContainerUser(10001, 10001)
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repo"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "b").write_text("w")
    (repo / "out").symlink_to(outside)
    user.hand_over_tree(repo)
    assert {p.lstat().st_uid for p in (repo, *repo.rglob("*"))} == {10001}
    assert outside.stat().st_uid == 0
    user.take_back_tree(repo)
    assert {p.lstat().st_uid for p in (repo, *repo.rglob("*"))} == {0}
