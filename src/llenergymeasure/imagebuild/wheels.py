"""Wheelhouses: the Python wheels an image installs, downloaded on the host (no network in the
build), cached by what they hold; and a fresh wheel of this checkout beside them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from llenergymeasure.errors import UserError

Say = Callable[[str], None]


def run(cmd: list[str], say: Say, env: dict[str, str] | None = None) -> None:
    """A build step; its output is kept for the error message only."""
    say("  $ " + " ".join(cmd[:6]) + (" ..." if len(cmd) > 6 else ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise UserError(f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode}):\n{tail}")


def fill(
    house: Path,
    requirements: Sequence[str],
    say: Say,
    pip_args: Sequence[str] = (),
    extra: Callable[[Path], None] | None = None,
    extra_key: Sequence[str] = (),
) -> bool:
    """Download `requirements` and their closure as binary wheels into `house`, unless the
    same set is there already; `extra(house)` adds other files to it. True when downloaded."""
    inputs = [*requirements, *pip_args, *extra_key]
    stamp = house / f".complete-{hashlib.sha256(' '.join(inputs).encode()).hexdigest()[:16]}"
    if stamp.exists():
        return False
    shutil.rmtree(house, ignore_errors=True)
    house.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
    run([*pip, *pip_args, "-d", str(house), "pip", *requirements], say)
    if extra is not None:
        extra(house)
    stamp.write_text("\n".join(inputs) + "\n")
    return True


def project_wheel(root: Path, folder: Path, say: Say) -> None:
    """A wheel of this checkout in `folder`, replacing an older one."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("llenergymeasure-*.whl"):
        old.unlink()
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(root)], say
    )
