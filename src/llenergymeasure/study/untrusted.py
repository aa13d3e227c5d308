"""Reading and creating files in folders llem does not control alone: a run's work folder (its
container's user owns it), a study folder on shared storage, a lock folder.

The rule, for every such file the host opens:
- never through a link: `O_NOFOLLOW` on the file (a link planted in place of `result.json` is
  refused, not followed to `/etc/shadow` or `/dev/zero`);
- never blocking on open: `O_NONBLOCK` (a FIFO in place of `progress.jsonl` opens at once
  instead of waiting for a writer that never comes);
- regular files only, judged by `fstat` of what was opened, so nothing can be swapped between
  the check and the read; one link only (a hard link to someone else's file is refused);
- at most the cap of its kind, within a deadline (a whole-file read runs in a thread of its own:
  one that never returns, as from a wedged network filesystem, ends with a reason instead of
  freezing llem);
- where llem trusts only itself (a study folder's files, the files a cluster node is told to
  run), owned by this user and writable by no one else (`sole_writer`).

A file that breaks a rule raises `UntrustedFile` naming the file and the rule; callers record it
as the run's failure, never as a crash of llem. Files llem creates there are created with
`O_EXCL | O_NOFOLLOW`: a name planted first makes the creation fail instead of writing through.
Folders llem keeps for itself are made 0700 whatever the umask (`new_private_folder`) and used
only while they are this user's and writable by no one else (`folder_problem`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llenergymeasure.errors import UserError

READ_CHUNK = 1 << 20
READ_DEADLINE_S = 30.0
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UntrustedFile(Exception):
    """A file llem will not read (or create) as asked: a link, not regular, too big, too slow,
    or not owned as it must be."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{Path(path).name}: {problem}")
        self.path = Path(path)
        self.problem = problem


def kind_of(mode: int) -> str:
    """What a file is, in words, from its st_mode."""
    for test, word in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return word
    return "not a regular file"


def irregular(path: Path) -> str | None:
    """Why `path` is not a plain regular file ("<name> is a FIFO, ..."), without following or
    opening it; None when it is one or does not exist."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return f"{path.name} is {kind_of(info.st_mode)}, not a regular file"
    if info.st_nlink > 1:
        return f"{path.name} has {info.st_nlink} hard links (a link to another file)"
    return None


def regular_size(path: Path) -> int | None:
    """The size of `path` if it is a regular file (not followed), else None: what a watch loop
    may poll without opening anything."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def open_checked(
    path: Path,
    flags: int = os.O_RDONLY,
    *,
    owner: int | None = None,
    private: bool = False,
    sole_writer: bool = False,
) -> tuple[int, os.stat_result]:
    """An fd of `path` opened by the rule above (`flags` added: e.g. to append), with its
    fstat; the caller closes it. `owner`: the uid it must have; `private`: no one but the owner
    may write it (nor, the mode bits say, read it); `sole_writer`: no one but the owner may
    write it."""
    try:
        fd = os.open(path, _OPEN_FLAGS | flags)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UntrustedFile(path, "is a symbolic link; llem does not follow it") from None
        raise UntrustedFile(path, f"cannot be opened ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        _check(path, info, owner, private, sole_writer)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _check(
    path: Path, info: os.stat_result, owner: int | None, private: bool, sole_writer: bool
) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedFile(path, f"is {kind_of(info.st_mode)}, not a regular file")
    if info.st_nlink > 1:
        raise UntrustedFile(path, f"has {info.st_nlink} hard links; llem reads only its own")
    if owner is not None and info.st_uid != owner:
        raise UntrustedFile(path, f"is owned by uid {info.st_uid}, not by uid {owner}")
    mode = stat.S_IMODE(info.st_mode)
    if private and mode & 0o077:
        raise UntrustedFile(path, f"has mode {mode:04o}; it must be 0600 (owner only)")
    if sole_writer and mode & 0o022:
        raise UntrustedFile(path, f"has mode {mode:04o}: others may write it")


@contextmanager
def open_regular(
    path: Path, *, owner: int | None = None, private: bool = False, sole_writer: bool = False
) -> Iterator[tuple[int, os.stat_result]]:
    """`open_checked` for reading, closed on leaving."""
    fd, info = open_checked(path, owner=owner, private=private, sole_writer=sole_writer)
    try:
        yield fd, info
    finally:
        os.close(fd)


def read_bytes(
    path: Path,
    cap: int,
    *,
    owner: int | None = None,
    private: bool = False,
    sole_writer: bool = False,
    deadline_s: float = READ_DEADLINE_S,
) -> bytes:
    """The whole of `path`, at most `cap` bytes (more is refused, not cut), within
    `deadline_s`: the read runs in a thread of its own, so a read that never returns (a hung
    network filesystem) leaves that thread waiting, not llem."""
    outcome: list[bytes | BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            with open_regular(path, owner=owner, private=private, sole_writer=sole_writer) as (
                fd,
                info,
            ):
                if info.st_size > cap:
                    size, limit = _size(info.st_size), _size(cap)
                    raise UntrustedFile(path, f"is {size}, above its {limit} cap")
                outcome.append(_read(fd, path, cap))
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)
        done.set()

    threading.Thread(target=read, name=f"read {path.name}", daemon=True).start()
    if not done.wait(deadline_s):
        raise UntrustedFile(path, f"was not read within {deadline_s:g} s (a stalled filesystem?)")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def read_from(path: Path, offset: int, limit: int) -> bytes:
    """Up to `limit` bytes of `path` from `offset` (b"" when it does not exist)."""
    try:
        with open_regular(path) as (fd, _info):
            return os.pread(fd, limit, offset)
    except FileNotFoundError:
        return b""


def read_tail(path: Path, max_bytes: int) -> bytes:
    """The last `max_bytes` of `path` (b"" when it does not exist)."""
    try:
        with open_regular(path) as (fd, info):
            start = max(0, info.st_size - max_bytes)
            return os.pread(fd, max_bytes, start)
    except FileNotFoundError:
        return b""


def _read(fd: int, path: Path, cap: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(READ_CHUNK, cap + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > cap:  # it grew while being read
            raise UntrustedFile(path, f"grew above its {_size(cap)} cap while being read")
        chunks.append(chunk)


def create_new(path: Path, mode: int = 0o644, flags: int = 0) -> int:
    """A new file for writing (fd; `flags` added, e.g. O_APPEND), refused when anything of that
    name is there already."""
    try:
        return os.open(
            path,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | flags,
            mode,
        )
    except FileExistsError:
        try:
            found = kind_of(os.lstat(path).st_mode)
        except OSError:
            found = "a file"
        raise UntrustedFile(path, f"is already there ({found}); llem creates it itself") from None


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# C0 and C1 control characters but tab and newline, and every escape sequence they start
# (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ST`, two-byte `ESC x`).
_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (window title, hyperlinks, clipboard)
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor moves, screen clears)
    r"|\x1b[@-_]?"  # other two-byte escapes, or a lone ESC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # the remaining control characters
)


def printable(text: str) -> str:
    """`text` (from a container, another user's file) fit for a terminal: control characters
    and escape sequences removed, so nothing it says can move the cursor, retitle the window,
    write the clipboard or hide a line."""
    return _ESCAPES.sub("", text)


def folder_problem(folder: Path, *, follow: bool = False) -> str | None:
    """Why `folder` is not a real folder of this user that no one else may write ("belongs to
    uid 1001, not to you (uid 1000)"); None when it is. `follow`: a link named `folder` is
    judged by what it points to (a path the user gave), else refused (a name found in a folder)."""
    try:
        info = os.stat(folder) if follow else os.lstat(folder)
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return f"is not a folder ({kind_of(info.st_mode)})"
    if info.st_uid != os.geteuid():
        return f"belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})"
    if info.st_mode & 0o022:
        return f"may be written by others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def new_private_folder(folder: Path) -> Path:
    """Create `folder`, 0700 whatever the umask or a default ACL of its parent (set again
    through a descriptor of the new folder, never through a link); FileExistsError when
    anything of that name is there."""
    os.mkdir(folder, 0o700)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return folder


def own_folder(folder: Path, hint: str) -> Path:
    """`folder`, created if missing (0700), refused (UserError, with `hint`) unless it is a
    real folder of this user that no one else may write: where llem keeps what others must
    not change (locks, what a cluster node is told to run, a study folder's own folders)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        new_private_folder(folder)
    except FileExistsError:
        pass
    except OSError as error:
        raise UserError(f"cannot create {folder}: {error.strerror}", hint=hint) from None
    problem = folder_problem(folder)
    if problem is not None:
        raise UserError(
            f"{folder} {problem}; llem keeps this only in a folder of its own", hint=hint
        )
    return folder
