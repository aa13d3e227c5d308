"""The host folders containers read or write across runs, and how llem keeps them its own.

- the user's Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
  `~/.cache/huggingface/hub`): only ever mounted read-only, never changed, never chowned; the
  token file of `$HF_HOME` is outside it and never mounted;
- llem's own cache (`$LLEM_CACHE_DIR`, else `~/.cache/llenergymeasure`): `hf-hub/` (what fetch
  containers download), `fetch/` (the fetch containers' work folders), and what an engine
  compiles once (the backend table names its folder: `tensorrt-engines/`, moved by
  `$LLEM_ENGINE_CACHE`). Each folder a container writes is created
  by llem and, when llem runs as root, handed to the containers' user: that folder alone,
  never what is in it, and never a folder that is a link or belongs to anyone else.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from llenergymeasure.contract.backends import spec_of
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.container_user import ContainerUser


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
    """What the backend's engine compiles once and reuses (its table row names the folder under
    llem's cache, and the variable that moves it); None where it compiles nothing."""
    spec = spec_of(backend)
    if spec.engine_cache is None:
        return None
    moved = os.environ.get(spec.engine_cache_env) if spec.engine_cache_env else None
    return Path(moved or llem_cache_root() / spec.engine_cache)


def owned_folder(folder: Path, user: ContainerUser) -> Path:
    """A folder of llem's own that containers write: created if missing, refused when it is a
    link or belongs to someone but this user or the containers' user; then handed to the
    containers' user (the folder alone)."""
    with contextlib.suppress(FileExistsError):  # a link to nowhere: refused below
        folder.mkdir(parents=True, exist_ok=True)
    info = os.lstat(folder)
    owners = {os.geteuid(), user.uid}
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
        what = (
            "not a folder (a link?)"
            if not stat.S_ISDIR(info.st_mode)
            else (f"owned by uid {info.st_uid}")
        )
        raise UserError(
            f"{folder} is {what}; llem writes only into folders of its own",
            hint="remove it, or set LLEM_CACHE_DIR to a folder of yours",
        )
    user.hand_over(folder)
    return folder
