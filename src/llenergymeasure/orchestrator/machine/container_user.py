"""Who an experiment's container runs as, and the limits it runs under.

Never root: a container runs as the invoker's uid:gid, or, when llem itself runs as root (as it
often does on GPU servers), as `execution.container_user` (default 10001:10001). In that case
the folders the container must write — its work folder, and llem's own caches (`caches.py`) —
are handed to that user (the folder itself, never recursively); the invoker, root, keeps full
access to them and to everything written there.
"""

from __future__ import annotations

import os
import resource
import stat
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.errors import UserError

# What NVIDIA recommends for its CUDA containers (pinned memory for NCCL, deep native stacks).
GPU_ULIMITS = {"memlock": -1, "stack": 64 * 2**20}
# No core dumps: a crashed engine would write gigabytes. Open files keep the engine's own limit
# (1048576 under Docker's systemd unit): raising a hard limit above it fails where the engine
# lacks CAP_SYS_RESOURCE.
BASE_ULIMITS = {"core": 0}


@dataclass(frozen=True)
class ContainerUser:
    uid: int
    gid: int

    @classmethod
    def for_invoker(cls, configured: str) -> ContainerUser:
        """The invoker's uid:gid, or `configured` (uid:gid) when the invoker is root."""
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        uid, gid = (int(part) for part in configured.split(":"))
        return cls(uid, gid)

    @property
    def spec(self) -> str:
        return f"{self.uid}:{self.gid}"

    @property
    def is_invoker(self) -> bool:
        return self.uid == os.geteuid()

    def hand_over(self, folder: Path) -> None:
        """Make `folder` (the folder alone) this user's, so the container can write there.
        Only needed, and only possible, when llem runs as root. Opened without following a
        link, and changed through that descriptor: a folder swapped for a link in between is
        not what gets chowned."""
        if self.is_invoker or os.geteuid() != 0:
            return
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if (info.st_uid, info.st_gid) != (self.uid, self.gid):
                os.fchown(fd, self.uid, self.gid)
        finally:
            os.close(fd)

    def can_read(self, path: Path) -> bool:
        """Whether this user may read `path` (and enter it, for a folder) by its mode bits."""
        info = path.stat()
        folder = stat.S_ISDIR(info.st_mode)
        if info.st_uid == self.uid:
            need = stat.S_IRUSR | (stat.S_IXUSR if folder else 0)
        elif info.st_gid == self.gid:
            need = stat.S_IRGRP | (stat.S_IXGRP if folder else 0)
        else:
            need = stat.S_IROTH | (stat.S_IXOTH if folder else 0)
        return info.st_mode & need == need

    def check_readable(self, path: Path, what: str) -> None:
        """A read-only input the container user cannot read is refused before any run."""
        if self.is_invoker or self.can_read(path):
            return
        raise UserError(
            f"{what} {path} is not readable by the experiment containers' user {self.spec} "
            "(llem runs as root; containers never do)",
            hint=f"`chmod -R a+rX {path}`, or set execution.container_user to its owner",
        )


def engine_process_limits() -> dict[str, int]:
    """nofile and nproc at this process's hard limits, nproc also at most the kernel's pid_max
    (runc is refused more, seen under a hard limit of 96365 with pid_max 32768): what an engine
    that must be told them (podman) can set without CAP_SYS_RESOURCE."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    return {"nofile": -1 if nofile == resource.RLIM_INFINITY else nofile, "nproc": nproc}


@dataclass(frozen=True)
class ContainerLimits:
    """Process and resource limits of every experiment container of a study."""

    pids_limit: int | None
    ulimits: dict[str, int] = field(default_factory=dict)  # the study's, over the defaults
    engine_defaults: dict[str, int] = field(default_factory=dict)  # what the engine needs said

    def ulimits_for(self, gpu_count: int) -> dict[str, int]:
        defaults = {
            **self.engine_defaults,
            **BASE_ULIMITS,
            **(GPU_ULIMITS if gpu_count > 0 else {}),
        }
        return {**defaults, **self.ulimits}
