"""Who an experiment's container runs as, and the limits it runs under.

Never root, never group root: a container runs as the invoker's uid:gid, or, when llem itself
runs as root (as it often does on GPU servers), as `execution.container_user` (default
10001:10001). Whatever the source, uid 0 and gid 0 are refused. The default is used only where
this host's user database (`pwd`, so NSS and LDAP too) has an account for its uid that nobody
logs in to: an account made for it reserves the uid, so no login created later gets that uid
and with it the folders llem handed over, and no person's processes share it
(`scripts/demo` and the tests' setup make it as root: `scripts/lib/container-account.sh`). A
`container_user` the study sets is taken as given (the operator chose it).

When llem runs as root, the folders the container must write — its work folder, and llem's
own caches (`caches.py`) — are handed to that user (the folder itself, never recursively); the
invoker, root, keeps full access to them and to everything written there. A fetch's folders
in llem's hub cache are handed over as a tree for the fetch and taken back after it.
"""

from __future__ import annotations

import os
import pwd
import resource
import stat
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.config.study import DEFAULT_CONTAINER_USER
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

    def __post_init__(self) -> None:
        if self.uid == 0 or self.gid == 0:
            raise UserError(
                f"containers would run as {self.uid}:{self.gid}; llem never runs one as root "
                "or with group root (gid 0)",
                hint="set execution.container_user to a uid:gid other than 0 "
                "(llem as root), or run llem with a primary group other than root",
            )

    @classmethod
    def for_invoker(cls, configured: str | None) -> ContainerUser:
        """The invoker's uid:gid, or, when the invoker is root, `configured` (uid:gid, as the
        study set it) or the default, which must be an account of this host
        (`check_account`)."""
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        uid, gid = (int(part) for part in (configured or DEFAULT_CONTAINER_USER).split(":"))
        user = cls(uid, gid)
        if configured is None:
            check_account(uid, gid)
        return user

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

    def hand_over_tree(self, folder: Path) -> None:
        """`folder` and everything in it this user's (links not followed, themselves changed);
        only for folders of llem's own whose writer is llem's own image."""
        self._chown_tree(folder, self.uid, self.gid)

    def take_back_tree(self, folder: Path) -> None:
        """`folder` and everything in it the invoker's again (the undo of `hand_over_tree`)."""
        self._chown_tree(folder, os.geteuid(), os.getegid())

    def _chown_tree(self, folder: Path, uid: int, gid: int) -> None:
        if self.is_invoker or os.geteuid() != 0:
            return
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise UserError(f"{folder} is not a folder (a link?); llem changes only its own")
        os.chown(folder, uid, gid, follow_symlinks=False)
        for root, folders, files in os.walk(folder):  # never into a link to a folder
            for name in (*folders, *files):
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)

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


# Login shells of accounts nobody logs in to: a uid with one of these is not a person's.
NO_LOGIN_SHELLS = frozenset(
    {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/usr/bin/nologin"}
)


def check_account(uid: int, gid: int) -> None:
    """`uid` is an account of this host's user database that nobody logs in to (a system
    account made for it); UserError naming the fix else: without an account a login created
    later could get the uid and with it the folders llem hands over; with a login, that
    person's processes could change the runs' work folders while they run."""
    reserve = (
        f"reserve it (`groupadd --system --gid {gid} llem && useradd --system "
        f"--no-create-home --shell /usr/sbin/nologin --uid {uid} --gid {gid} llem`), or set "
        "execution.container_user to the uid:gid containers should run as"
    )
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        raise UserError(
            f"the experiment containers' default user {uid}:{gid} has no account on this host: "
            "llem, running as root, would hand its folders to a uid that a login created later "
            "could get",
            hint=reserve,
        ) from None
    if account.pw_shell not in NO_LOGIN_SHELLS:
        raise UserError(
            f"the experiment containers' default user {uid}:{gid} is the login "
            f"{account.pw_name!r} of this host (shell {account.pw_shell}): its processes could "
            "change the runs' work folders while they run",
            hint="set execution.container_user to a uid:gid of no login (a system account with "
            "/usr/sbin/nologin)",
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
