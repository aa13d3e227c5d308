"""The host folders containers read or write across runs, and how llem keeps them its own.

- the user's Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
  `~/.cache/huggingface/hub`): only ever mounted read-only, one repository's folder at a time,
  never changed, never chowned; the token file of `$HF_HOME` is outside it and never mounted;
- llem's own cache (`$LLEM_CACHE_DIR`, else `~/.cache/llenergymeasure`):
  - `hf-hub/`: what llem's fetch image downloads. A repository's folder (and its lock folder
    `hf-hub/.locks/<repository>`) is writable only while llem's own fetch container downloads
    into it, one llem at a time; when llem runs as root it is handed to the containers' user for
    that fetch and taken back afterwards, so no container of any study can write it: experiments
    mount it read-only;
  - `fetch/`: the fetch containers' work folders;
  - what an engine compiles once (the backend table names its folder: `tensorrt-engines/`, moved
    by `$LLEM_ENGINE_CACHE`), **one folder per image** (`<folder>/<image ID hex>`, 0700): a
    study's container writes only what containers of the same image load, never what another
    image's containers will.
  Every folder a container writes is created by llem and, when llem runs as root, handed to the
  containers' user: that folder alone, or (a fetch's repository) its tree walked without
  following links, and never a folder that is a link or belongs to anyone else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from llenergymeasure.contract.backends import spec_of
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.container_user import ContainerUser
from llenergymeasure.orchestrator.machine.locks import open_own_file

HUB_LOCKS = ".locks"  # where the hub client keeps a repository's download locks, under its cache
FETCH_LOCK = ".llem-fetch.lock"  # one llem downloads into llem's hub cache at a time


def user_hub_cache() -> Path:
    explicit = os.environ.get("HF_HUB_CACHE")
    if explicit:
        return Path(explicit)
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def llem_cache_root() -> Path:
    return Path(os.environ.get("LLEM_CACHE_DIR") or Path.home() / ".cache" / "llenergymeasure")


def llem_hub_cache() -> Path:
    return llem_cache_root() / "hf-hub"


def engine_cache_dir(backend: str) -> Path | None:
    """What the backend's engine compiles once and reuses, for all images (its table row names
    the folder under llem's cache, and the variable that moves it); None where it compiles
    nothing. Containers get one image's folder in it (`image_engine_cache`)."""
    spec = spec_of(backend)
    if spec.engine_cache is None:
        return None
    moved = os.environ.get(spec.engine_cache_env) if spec.engine_cache_env else None
    return Path(moved or llem_cache_root() / spec.engine_cache)


def image_engine_cache(backend: str, image_id: str, user: ContainerUser) -> Path | None:
    """The engine cache of containers of `image_id` (created 0700 and handed to the
    containers' user); None where the backend compiles nothing."""
    root = engine_cache_dir(backend)
    if root is None:
        return None
    llem_folder(root, user)
    folder = llem_folder(root / image_id.removeprefix("sha256:"), user)
    _private(folder)
    user.hand_over(folder)
    return folder


def llem_folder(folder: Path, user: ContainerUser) -> Path:
    """A folder of llem's own: created if missing, refused when it is a link or belongs to
    someone but this user or the containers' user."""
    with contextlib.suppress(FileExistsError):  # a link to nowhere: refused below
        folder.mkdir(parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in {os.geteuid(), user.uid}:
        what = (
            "not a folder (a link?)"
            if not stat.S_ISDIR(info.st_mode)
            else (f"owned by uid {info.st_uid}")
        )
        raise UserError(
            f"{folder} is {what}; llem writes only into folders of its own",
            hint="remove it, or set LLEM_CACHE_DIR to a folder of yours",
        )
    return folder


def _private(folder: Path) -> None:
    """Mode 0700, set through a descriptor opened without following a link."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def owned_folder(folder: Path, user: ContainerUser) -> Path:
    """A folder of llem's own (`llem_folder`) that containers write: handed to the containers'
    user (the folder alone)."""
    llem_folder(folder, user)
    user.hand_over(folder)
    return folder


@contextlib.contextmanager
def writable_for_fetch(folder_names: list[str], user: ContainerUser) -> Iterator[list[Path]]:
    """The folders of llem's hub cache a fetch downloads into (each repository's, and its lock
    folder), writable by the containers' user while the block runs and taken back after it;
    one llem at a time (an flock on `hf-hub/.llem-fetch.lock`)."""
    hub = llem_folder(llem_hub_cache(), user)
    fd = open_own_file(hub / FETCH_LOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another llem's fetch: wait for it to end
        locks = llem_folder(hub / HUB_LOCKS, user)
        folders = [llem_folder(root / name, user) for name in folder_names for root in (hub, locks)]
        for folder in folders:
            user.hand_over_tree(folder)
        try:
            yield folders
        finally:
            for folder in folders:
                user.take_back_tree(folder)
    finally:
        os.close(fd)  # drops the flock
