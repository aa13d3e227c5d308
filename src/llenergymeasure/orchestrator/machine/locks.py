"""Host locks: one `llem run` measures on a GPU, or on a CPU, at a time.

A study holds an exclusive `flock` on a lock file per GPU index (`gpu-<i>.lock`) and per host
CPU (`cpu-<i>.lock`) that its runs use, for as long as it runs; the kernel drops the lock when
the process ends, however it ends, so a `kill -9` leaves no stale lock. CPU studies lock the
CPUs their runs are pinned to (every CPU llem may use when runs are not pinned): two CPU studies
at once would measure each other's CPU energy.

The lock folder is llem's own (`lock_dir`): `$LLEM_LOCK_DIR`, else `/run/llem/locks` for root;
for others the user's runtime folder (`$XDG_RUNTIME_DIR/llem/locks`, else
`/run/user/<uid>/llem/locks`) where that folder exists and is the user's, else the user's cache
folder (`$XDG_CACHE_HOME/llem/locks/<host>`, else `~/.cache/llem/locks/<host>`: a home may be
shared by many hosts, and a GPU index means another GPU on each). Never a fixed name in a folder
every user may write (`/tmp`), which another user could create first. It is refused when it is
a link, is owned by another user, or others may write it; lock files are opened without
following links and must be this user's regular files. So no other user can hold a lock llem
waits for, nor turn a lock file into a link that makes llem write elsewhere. Studies of other
users are not locked out by these files (their folders are their own): a process of theirs on a
study's GPU is caught by the foreign-process check instead (`execution.foreign_gpu_processes`).

The content of a lock file names its holder (study, pid, host). A lock held although its pid is
no longer running on this host was inherited by a process the holder started; the refusal says
so and how to find it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import re
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.orphans import pid_alive
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.untrusted import own_folder, printable

ENV_LOCK_DIR = "LLEM_LOCK_DIR"
ROOT_LOCK_DIR = "/run/llem/locks"
# flock's errors where the filesystem has no locks (NFS without lockd, some FUSE mounts).
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def lock_dir(env: Mapping[str, str] | None = None, uid: int | None = None) -> Path:
    """This host's lock folder for user `uid` (default: this process's) under the environment
    `env` (default: this process's); see the module docstring."""
    env = os.environ if env is None else env
    uid = os.geteuid() if uid is None else uid
    configured = env.get(ENV_LOCK_DIR)
    if configured:
        return Path(configured)
    if uid == 0:
        return Path(ROOT_LOCK_DIR)
    runtime = Path(_absolute(env.get("XDG_RUNTIME_DIR")) or f"/run/user/{uid}")
    if _folder_of(runtime, uid):
        return runtime / "llem" / "locks"
    home = _absolute(env.get("HOME")) or _absolute(_home(uid))
    cache = _absolute(env.get("XDG_CACHE_HOME")) or (home and os.path.join(home, ".cache"))
    if not cache:
        raise UserError(
            f"no folder for llem's host locks: no runtime folder of uid {uid}, and no home",
            hint=f"set {ENV_LOCK_DIR} to a folder only you may write",
        )
    host = re.sub(r"[^A-Za-z0-9._-]", "_", os.uname().nodename) or "host"
    return Path(cache) / "llem" / "locks" / host


def _absolute(path: str | None) -> str | None:
    """An XDG path is ignored unless absolute (the XDG base directory specification)."""
    return path if path and os.path.isabs(path) else None


def _folder_of(path: Path, uid: int) -> bool:
    """`path` is a real folder (not a link) that belongs to `uid`."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == uid


def _home(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return ""


def try_flock(fd: int, path: Path) -> bool:
    """An exclusive, non-blocking flock on `fd`: True taken, False held by another process;
    a filesystem without locks is one message naming it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in _NO_FLOCK:
            raise UserError(
                f"cannot lock {path}: its filesystem ({filesystem_of(path)}) does not support "
                f"flock ({error.strerror})",
                hint=f"put it on a local filesystem (for host locks: {ENV_LOCK_DIR}); "
                "on NFS, mount with lock support",
            ) from None
        raise
    return True


def filesystem_of(path: Path) -> str:
    """The type of the filesystem `path` is on, from /proc/self/mounts ("unknown" elsewhere)."""
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def open_own_file(path: Path) -> int:
    """An fd (read-write) of this user's regular file `path`, created 0600 if missing, never
    through a link."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link; llem does not follow it") from None
        raise UserError(f"cannot open {path}: {error.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise UserError(
            f"{path} is not a regular file of yours; llem will not use it",
            hint="remove it; llem creates its own",
        )
    return fd


class HostLocks:
    """Exclusive locks on GPU indices and host CPUs; acquire all or none."""

    def __init__(
        self,
        gpu_indices: list[int],
        holder: str,
        folder: Path | None = None,
        cpus: list[int] | None = None,
    ) -> None:
        self.names = [f"gpu-{i}" for i in sorted(set(gpu_indices))]
        self.names += [f"cpu-{i}" for i in sorted(set(cpus or []))]
        self.holder = holder
        self.folder = folder or lock_dir()
        self._fds: list[int] = []

    def acquire(self) -> HostLocks:
        if not self.names:
            return self
        own_folder(self.folder, hint=f"set {ENV_LOCK_DIR} to a folder only you may write")
        for name in self.names:
            path = self.folder / f"{name}.lock"
            fd = open_own_file(path)
            try:
                taken = try_flock(fd, path)
            except BaseException:
                os.close(fd)
                self.release()
                raise
            if not taken:
                holder = _holder(fd, path)
                os.close(fd)
                self.release()
                kind, _, index = name.partition("-")
                pool = "GPUs (execution.gpu_ids)" if kind == "gpu" else "CPUs (execution.cpu_ids)"
                raise UserError(
                    f"{kind.upper()} {index} is in use by another llem run: {holder}",
                    hint=f"wait for it to finish, or give this study other {pool}",
                )
            os.ftruncate(fd, 0)
            record = {"study": self.holder, "pid": os.getpid(), "host": os.uname().nodename}
            os.pwrite(fd, json.dumps(record).encode(), 0)
            self._fds.append(fd)
        return self

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing drops the flock
        self._fds = []

    def __enter__(self) -> HostLocks:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int, path: Path) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return "an unknown holder"
    study, pid, host = info.get("study", "?"), info.get("pid"), info.get("host")
    text = f"study {study} (pid {pid if pid is not None else '?'})"
    if isinstance(pid, int) and host == os.uname().nodename and not pid_alive(pid):
        text += (
            f", which no longer runs on this host: a process it started still holds {path}; "
            f"`fuser -v {path}` names it, stop that process"
        )
    return text


@contextmanager
def writer_lock(study_dir: Path) -> Iterator[None]:
    """The study folder's manifest has one writer at a time: the llem that runs (or follows)
    it, or `llem status` collecting ended cluster jobs. Taken before the manifest is opened. An
    flock: the kernel drops it when the holder ends, however it ends. Held: UserError naming
    the holder's pid."""
    path = study_dir / StudyPaths.WRITER_LOCK
    fd = open_own_file(path)
    try:
        if not try_flock(fd, path):
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"another llem (pid {printable(holder)}) is running or following the study "
                f"{study_dir}",
                hint="let it finish, or stop it (Ctrl+C) first",
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
