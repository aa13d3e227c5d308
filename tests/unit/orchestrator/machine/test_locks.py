from __future__ import annotations

import json
import os
import subprocess
import sys
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
    else:
        assert str(os.geteuid()) in str(folder)
    assert not str(folder).startswith("/tmp/llem-locks/")


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
