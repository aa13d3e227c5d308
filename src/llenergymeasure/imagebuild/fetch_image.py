"""llem's own fetch image, `llenergymeasure/fetch:<key>`: what downloads hub repositories in the
pre-flight, with the network and (where a repository needs it) the token. Never the study's
image: an image a study names may be anything, and it never gets a network or a secret.

What it holds: a Python 3.11 base (`python:3.11-slim`, or the offline base of `cpu_image`), the
hub client and pydantic as binary wheels unpacked on the host (`pip install --target`, for the
image's Python and platform), and llem's fetch module with exactly the llem modules it imports
(found by importing it in a fresh interpreter, so the list cannot go stale). No RUN step needs
a network, and no build needs BuildKit or a source checkout: the engine's own builder, over a
context of a few MB.

Pinned: the tag names a hash of its inputs (this file's Dockerfile and requirements, the
module files); an image with that tag and that `llem.inputs` label is reused, anything else is
built anew. The pre-flight resolves it to its image ID and runs it by ID.

Why an image of its own rather than the CPU image (which has the hub client too): the pre-flight
must be able to build it wherever llem is installed, and the CPU image needs a source checkout,
BuildKit and a 339 MB wheelhouse (torch among it); it is 1.6 GB against 106 MB, is rebuilt
whenever any file of the package changes (this one: when the fetch module or the contract
does), and would put torch and transformers in the one container that holds the token.
Measured here (2 CPUs, wheels from pip's cache): this image from nothing 5 s, reusing a current
one 1 s (the module probe); the CPU image from nothing 69 s with its wheelhouse present, 13 s
when only llem's own layer changed. An older fetch image is removed once a newer one is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
import docker.errors

from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.imagebuild.cpu_image import (
    INPUTS_LABEL,
    PLATFORMS,
    PYTHON_VERSION,
    resolve_base,
)
from llenergymeasure.imagebuild.wheels import Say, run

FETCH_REPO = "llenergymeasure/fetch"
FETCH_MODULE = "llenergymeasure.experiment.fetch"
HUB_CLIENT = "huggingface_hub>=0.24,<3"
BASE_LABEL = "llem.base"

DOCKERFILE = f"""\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
COPY site /opt/llem/site
COPY src /opt/llem/src
ENV PYTHONPATH=/opt/llem/src:/opt/llem/site HOME=/tmp PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 HF_HUB_DISABLE_TELEMETRY=1
RUN ["python3", "-m", "compileall", "-q", "/opt/llem"]
RUN ["python3", "-c", "import huggingface_hub, {FETCH_MODULE}"]
WORKDIR /llem/work
ENTRYPOINT ["python3", "-m", "{FETCH_MODULE}", "/llem/work"]
"""


def requirements() -> list[str]:
    """The hub client, and pydantic as this llem declares it (the contract's models need it)."""
    declared = importlib.metadata.requires("llenergymeasure") or []
    pydantic = [spec for spec in declared if spec.replace(" ", "").startswith("pydantic")]
    return [HUB_CLIENT, *(pydantic or ["pydantic>=2.7,<3"])]


def module_files() -> dict[str, bytes]:
    """llem's files the fetch module imports (path inside the package's parent -> content),
    as a fresh interpreter imports them."""
    probe = (
        "import json, sys, importlib\n"
        f"importlib.import_module({FETCH_MODULE!r})\n"
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()\n"
        "    if (n == 'llenergymeasure' or n.startswith('llenergymeasure.'))\n"
        "    and getattr(m, '__file__', None))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise UserError(f"cannot import {FETCH_MODULE}: {proc.stderr.strip()[-500:]}")
    top = Path(__file__).resolve().parents[2]  # the folder that holds the package
    files = {}
    for name in json.loads(proc.stdout):
        path = Path(name).resolve()
        files[path.relative_to(top).as_posix()] = path.read_bytes()
    return files


def inputs_key(files: dict[str, bytes]) -> str:
    """What the image is built from, hashed: its tag and its `llem.inputs` label."""
    digest = hashlib.sha256()
    for part in (DOCKERFILE, *requirements(), PYTHON_VERSION, *PLATFORMS):
        digest.update(part.encode() + b"\n")
    for path, content in sorted(files.items()):
        digest.update(path.encode() + b"\n" + hashlib.sha256(content).digest())
    return digest.hexdigest()[:32]


def ensure_fetch_image(
    client: docker.DockerClient, say: Say, base: str | None = None, force: bool = False
) -> str:
    """The fetch image of this llem: reused when one with the same inputs is present, else
    built now (on `base`, default: `cpu_image.resolve_base`); returns its tag."""
    files = module_files()
    key = inputs_key(files)
    tag = f"{FETCH_REPO}:{key[:16]}"
    if not force and _label(client, tag) == key:
        return tag
    say(
        f"building llem's fetch image {tag} (the hub client and llem's fetch module, about "
        "140 MB; once per llem version): only this image downloads from the hub, never the "
        "study's"
    )
    base = resolve_base(client, say, base)
    with tempfile.TemporaryDirectory(prefix="llem-fetch-image-") as tmp:
        context = Path(tmp)
        _site(context / "site", say)
        for path, content in files.items():
            target = context / "src" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        (context / "Dockerfile").write_text(DOCKERFILE)
        try:
            image, _ = client.images.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE_IMAGE": base},
                labels={INPUTS_LABEL: key, BASE_LABEL: client.images.get(base).id},
                network_mode="none",
                rm=True,
                forcerm=True,
            )
        except docker.errors.BuildError as error:
            tail = "".join(
                str(line.get("stream") or line.get("error") or "") for line in error.build_log
            )
            raise UserError(
                f"llem's fetch image {tag} did not build on {base}: {error.msg}\n"
                + tail.strip()[-1500:],
                hint="`llem images build fetch --base IMAGE` with an image that has python3.11",
            ) from None
        except docker.errors.DockerException as error:
            raise UserError(f"llem's fetch image {tag} did not build: {error}") from None
    say(f"image: {tag} built, {short_id(image.id)}")
    for older in client.images.list(name=FETCH_REPO):
        for name in older.tags:
            if name != tag:
                with contextlib.suppress(docker.errors.DockerException):  # in use: kept
                    client.images.remove(name)
    return tag


def _site(folder: Path, say: Say) -> None:
    """The requirements and their closure, unpacked for the image's Python into `folder`."""
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--no-compile",
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            *platforms,
            "--target",
            str(folder),
            *requirements(),
        ],
        say,
    )
    shutil.rmtree(folder / "bin", ignore_errors=True)  # the wheels' console scripts: unused


def _label(client: docker.DockerClient, ref: str) -> str | None:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    return (image.labels or {}).get(INPUTS_LABEL)
