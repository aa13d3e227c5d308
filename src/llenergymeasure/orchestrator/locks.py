"""Per-GPU host locks: one `llem run` measures on a GPU at a time.

Each GPU index has a lock file `gpu-<index>.lock` under the lock folder (`LLEM_LOCK_DIR`, default
`/tmp/llem-locks`, shared by every user of the host). A study holds an exclusive `flock` on the
files of every GPU its runs use for as long as it runs; the kernel drops the lock when the
process ends, however it ends, so a `kill -9` leaves no stale lock. The file's content names the
holder (study id, pid) so a refused `llem run` can say who holds the GPU. Studies that use no
GPU (every run at gpu_count 0) take no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from llenergymeasure.errors import UserError

DEFAULT_LOCK_DIR = "/tmp/llem-locks"


def lock_dir() -> Path:
    return Path(os.environ.get("LLEM_LOCK_DIR", DEFAULT_LOCK_DIR))


class GpuLocks:
    """Exclusive locks on some GPU indices; acquire all or none."""

    def __init__(self, gpu_indices: list[int], holder: str, folder: Path | None = None) -> None:
        self.indices = sorted(set(gpu_indices))
        self.holder = holder
        self.folder = folder or lock_dir()
        self._fds: list[int] = []

    def acquire(self) -> GpuLocks:
        if not self.indices:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # shared by all users, like /tmp
            self.folder.chmod(0o1777)
        for index in self.indices:
            path = self.folder / f"gpu-{index}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                self.release()
                raise UserError(
                    f"GPU {index} is in use by another llem run: {holder}",
                    hint="wait for it to finish, or give this study other GPUs (execution.gpu_ids)",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"study": self.holder, "pid": os.getpid()}).encode(), 0)
            self._fds.append(fd)
        return self

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing drops the flock
        self._fds = []

    def __enter__(self) -> GpuLocks:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"study {info.get('study', '?')} (pid {info.get('pid', '?')})"
    except (OSError, ValueError):
        return "an unknown holder"
