from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine import locks
from llenergymeasure.orchestrator.machine.locks import HostLocks

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as others")


def test_lock_is_exclusive_names_the_holder_and_frees_on_release(tmp_path):
    first = HostLocks([0, 1], "study-a", tmp_path).acquire()
    with pytest.raises(UserError, match=r"GPU 1 is in use .*study-a \(pid \d+\)"):
        HostLocks([1, 2], "study-b", tmp_path).acquire()
    HostLocks([2], "study-c", tmp_path).acquire().release()  # all-or-none: 2 was freed
    first.release()
    HostLocks([0, 1], "study-b", tmp_path).acquire().release()


def test_cpu_studies_lock_their_cpus(tmp_path):
    with HostLocks([], "cpu-a", tmp_path, cpus=[0, 1]):
        with pytest.raises(UserError, match=r"CPU 1 is in use .*cpu-a") as refused:
            HostLocks([], "cpu-b", tmp_path, cpus=[1, 2]).acquire()
        assert "execution.cpu_ids" in (refused.value.hint or "")
        HostLocks([], "cpu-c", tmp_path, cpus=[2, 3]).acquire().release()


def test_nothing_to_lock_takes_no_lock(tmp_path):
    with HostLocks([], "nothing", tmp_path / "never"):
        pass
    assert not (tmp_path / "never").exists()


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o600)
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    (folder / "gpu-0.lock").symlink_to(victim)
    with pytest.raises(UserError, match="symbolic link"):
        HostLocks([0], "s", folder).acquire()
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("mode", [0o777, 0o1777])
def test_a_lock_folder_others_may_write_is_refused(tmp_path, mode):
    folder = tmp_path / "locks"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(UserError, match="may be written by others"):
        HostLocks([0], "s", folder).acquire()


def test_a_lock_folder_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "locks").symlink_to(tmp_path / "real")
    with pytest.raises(UserError, match="is not a folder"):
        HostLocks([0], "s", tmp_path / "locks").acquire()


@root_only
def test_a_lock_folder_of_another_user_is_refused(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    os.chown(folder, 12345, 12345)
    with pytest.raises(UserError, match="belongs to uid 12345"):
        HostLocks([0], "s", folder).acquire()


def test_the_default_folder_is_llems_own(monkeypatch):
    monkeypatch.delenv(locks.ENV_LOCK_DIR, raising=False)
    folder = locks.lock_dir()
    if os.geteuid() == 0:
        assert folder == Path("/run/llem/locks")
    assert not str(folder).startswith("/tmp/llem-locks")


def _folder_of(path: Path, uid: int) -> Path:
    path.mkdir(parents=True, mode=0o700)
    if os.geteuid() == 0:
        os.chown(path, uid, uid)
    return path


def test_a_user_s_locks_are_in_their_runtime_folder_when_it_is_theirs(tmp_path):
    uid = 4242 if os.geteuid() == 0 else os.geteuid()
    runtime = _folder_of(tmp_path / "run-user", uid)
    env = {"XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path / "home")}
    assert locks.lock_dir(env, uid) == runtime / "llem" / "locks"
    assert locks.lock_dir({**env, locks.ENV_LOCK_DIR: "/srv/locks"}, uid) == Path("/srv/locks")
    assert locks.lock_dir(env, 0) == Path(locks.ROOT_LOCK_DIR)


@root_only
def test_without_a_runtime_folder_of_their_own_a_user_s_locks_are_in_their_cache(tmp_path):
    host = os.uname().nodename
    foreign = _folder_of(tmp_path / "run-other", 5151)  # exists, but another user's
    home = tmp_path / "home"
    for env in ({}, {"XDG_RUNTIME_DIR": str(foreign)}, {"XDG_RUNTIME_DIR": "relative/run"}):
        env = {**env, "HOME": str(home)}
        folder = locks.lock_dir(env, 4242)  # no /run/user/4242 on this host
        assert folder == home / ".cache" / "llem" / "locks" / host
        cached = locks.lock_dir({**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")}, 4242)
        assert cached == tmp_path / "xdg" / "llem" / "locks" / host
    with pytest.raises(UserError, match="no folder for llem's host locks"):
        locks.lock_dir({}, 424242)  # no runtime folder, no HOME, no account


@root_only
def test_a_user_without_a_runtime_folder_locks_in_their_cache_never_in_tmp(tmp_path):
    """The real lock_dir and HostLocks in a child that runs as another user, with no
    XDG_RUNTIME_DIR: the locks land in that user's home, and a lock folder someone else made
    first is refused."""
    home = Path(tempfile.mkdtemp(prefix="llem-home-"))  # pytest's tmp_path is root's alone
    os.chown(home, 4242, 4242)
    try:
        _run_as_4242(home)
    finally:
        shutil.rmtree(home)


def _run_as_4242(home: Path) -> None:
    script = (
        "import os, sys\n"
        "from llenergymeasure.orchestrator.machine.locks import HostLocks, lock_dir\n"
        "os.setgid(4242); os.setuid(4242)\n"
        "HostLocks([0], 'child').acquire().release()\n"
        "print(lock_dir())\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert child.returncode == 0, child.stderr
    folder = Path(child.stdout.strip())
    assert folder == home / ".cache" / "llem" / "locks" / os.uname().nodename
    assert (folder / "gpu-0.lock").stat().st_uid == 4242
    assert not any(Path("/tmp").glob("llem-locks-4242"))
    # Made first by someone else (root here): refused, however it came to be there.
    os.chown(folder, 0, 0)
    refused = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and "belongs to uid 0, not to you" in refused.stderr


def test_a_lock_held_by_an_inherited_fd_names_the_dead_holder_and_the_fix(tmp_path):
    # A holder that started a child which inherited the lock, then died: the child holds it.
    script = (
        "import os, sys, time, json\n"
        "from pathlib import Path\n"
        "from llenergymeasure.orchestrator.machine.locks import HostLocks\n"
        f"held = HostLocks([3], 'gone-study', Path({str(tmp_path)!r})).acquire()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.close(1); os.close(2); time.sleep(30); os._exit(0)\n"
        "print(child, flush=True)\n"
    )
    child = int(
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
    )
    try:
        holder = json.loads((tmp_path / "gpu-3.lock").read_text())
        with pytest.raises(UserError) as refused:
            HostLocks([3], "s", tmp_path).acquire()
        message = refused.value.message
        assert f"pid {holder['pid']}" in message and "no longer runs on this host" in message
        assert f"fuser -v {tmp_path / 'gpu-3.lock'}" in message
    finally:
        os.kill(child, 9)


def test_a_filesystem_without_flock_is_one_message_naming_it(tmp_path, monkeypatch):
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(37, "No locks available")  # ENOLCK, as NFS without lockd answers

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    with pytest.raises(UserError, match=r"its filesystem \(\w+\) does not support flock"):
        HostLocks([0], "s", tmp_path).acquire()
