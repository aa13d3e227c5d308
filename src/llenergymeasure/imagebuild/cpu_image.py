"""Build the CPU image from a source checkout, with or without a registry.

Steps, each skipped when its cached output is current:

1. Base image. `python:3.11-slim` when it is present or can be pulled; otherwise an offline base
   made from Debian's packages: the closure of `python3` + `libstdc++6` + `busybox` downloaded
   with `apt-get --download-only` against an empty dpkg status, each .deb unpacked with
   `dpkg-deb --fsys-tarfile`, and the tree imported with `docker import`.
2. Wheelhouse. `pip download --only-binary=:all:` of the `pytorch` extra for CPython 3.11 on every
   manylinux tag into `build/wheelhouse/`, and a wheel of this checkout into
   `build/wheelhouse-project/`.
3. `docker build` of `images/cpu/Dockerfile` with BuildKit (wheels bind-mounted, never copied
   into a layer), tagged `llenergymeasure/cpu:<version>` and `:latest` and labelled with
   `llem.inputs`: a hash of the Dockerfile, the requirement set, the package source and the base
   image ID. A later build with the same inputs does nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker
import docker.errors

from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.imagebuild import wheels
from llenergymeasure.imagebuild.wheels import Say, run
from llenergymeasure.version import __version__

CPU_REPO = "llenergymeasure/cpu"
OFFLINE_BASE = "llenergymeasure/base-offline"
SLIM_BASE = "python:3.11-slim"
INPUTS_LABEL = "llem.inputs"
DEB_PACKAGES = ("python3", "libstdc++6", "busybox")
PYTHON_VERSION = "3.11"
# pydantic-core and others publish only some of these tags; listing all lets pip pick any.
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)
TORCH_PIN = "torch==2.13.0"


def source_root() -> Path:
    """The checkout this package runs from (editable install); the build needs its files."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file() or not (root / "images" / "cpu").is_dir():
        raise UserError(
            f"no source checkout found at {root}",
            hint="run `llem images build` from an editable install of a clone (pip install -e .)",
        )
    return root


def _requirements(root: Path) -> list[str]:
    """The runtime closure the image needs: the package's own and its `pytorch` and `datasets`
    extras.

    Read from the checkout's pyproject.toml (the installed metadata of an editable install can
    be older than the checkout).
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed metadata is the best there is
        declared = [
            spec
            for requirement in importlib.metadata.requires("llenergymeasure") or []
            for spec, _, marker in [requirement.partition(";")]
            if not marker or marker.replace(" ", "") in ('extra=="pytorch"', 'extra=="datasets"')
        ]
    else:
        project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
        extras = project["optional-dependencies"]
        declared = [*project["dependencies"], *extras["pytorch"], *extras["datasets"]]
    # torch is pinned to the CPU wheel whatever the extra allows
    wanted = {spec.strip() for spec in declared if not spec.strip().startswith("torch")}
    return sorted({*wanted, TORCH_PIN})


def _hash_tree(root: Path) -> str:
    digest = hashlib.sha256()
    files = [*sorted((root / "src").rglob("*.py")), root / "pyproject.toml"]
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _docker_cli() -> str:
    """The engine's own client (docker.io's has BuildKit built in); else whatever is on PATH."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise UserError(
        "no `docker` client found", hint="install docker.io (apt-get install docker.io)"
    )


def _image_label(client: docker.DockerClient, ref: str, label: str) -> str | None:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    return (image.labels or {}).get(label)


def offline_base(client: docker.DockerClient, say: Say) -> str:
    """Make (or reuse) the registry-free base image; returns its tag."""
    key = hashlib.sha256(" ".join((*DEB_PACKAGES, "applets")).encode()).hexdigest()[:16]
    tag = f"{OFFLINE_BASE}:{key}"
    if _image_label(client, tag, INPUTS_LABEL) == key:
        say(f"base: {tag} (cached)")
        return tag
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise UserError(
            "no registry reachable and no apt-get/dpkg-deb to build an offline base image",
            hint=f"make {SLIM_BASE} available (docker load) or build on Debian/Ubuntu",
        )
    say(f"base: building {tag} from Debian packages ({', '.join(DEB_PACKAGES)})")
    with tempfile.TemporaryDirectory(prefix="llem-base-") as tmp:
        work = Path(tmp)
        (work / "cache" / "archives" / "partial").mkdir(parents=True)
        (work / "status").write_text("")
        run(
            [
                "apt-get",
                "-q",
                "-o",
                f"Dir::State::status={work / 'status'}",
                "-o",
                f"Dir::Cache={work / 'cache'}",
                "-o",
                "Debug::NoLocking=1",
                "install",
                "--download-only",
                "-y",
                "--no-install-recommends",
                *DEB_PACKAGES,
            ],
            say,
        )
        rootfs = work / "root"
        for sub in ("bin", "lib", "lib64", "sbin"):
            (rootfs / "usr" / sub).mkdir(parents=True, exist_ok=True)
            (rootfs / sub).symlink_to(f"usr/{sub}")  # Debian 12's merged /usr
        debs = sorted((work / "cache" / "archives").glob("*.deb"))
        say(f"  unpacking {len(debs)} packages")
        for deb in debs:
            unpack = subprocess.Popen(
                ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
            )
            subprocess.run(
                ["tar", "-x", "--keep-directory-symlink", "-C", str(rootfs)],
                stdin=unpack.stdout,
                check=True,
            )
            if unpack.wait() != 0:
                raise UserError(f"dpkg-deb could not unpack {deb.name}")
        # busybox provides /bin/sh and the small tools (rm, sleep, ...) Dockerfiles expect.
        applets = subprocess.run(
            [str(rootfs / "usr" / "bin" / "busybox"), "--list"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for applet in applets:
            link = rootfs / "usr" / "bin" / applet
            if not link.exists() and not link.is_symlink():
                link.symlink_to("busybox")
        for sub in ("tmp", "llem/work", "etc"):
            (rootfs / sub).mkdir(parents=True, exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (rootfs / "etc" / "group").write_text("root:x:0:\n")
        tarball = work / "rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(rootfs, arcname=".")
        say("  docker import")
        with open(tarball, "rb") as handle:
            client.api.import_image_from_data(
                handle.read(),
                repository=OFFLINE_BASE,
                tag=key,
                changes=[f"LABEL {INPUTS_LABEL}={key}", 'CMD ["/bin/sh"]'],
            )
    return tag


def resolve_base(client: docker.DockerClient, say: Say, base: str | None) -> str:
    if base:
        return base
    try:
        client.images.get(SLIM_BASE)
        say(f"base: {SLIM_BASE} (present)")
        return SLIM_BASE
    except docker.errors.ImageNotFound:
        pass
    try:
        repo, tag = SLIM_BASE.split(":")
        client.images.pull(repo, tag=tag)
        say(f"base: pulled {SLIM_BASE}")
        return SLIM_BASE
    except docker.errors.DockerException as error:
        say(f"base: cannot pull {SLIM_BASE} ({str(error).splitlines()[0][:100]}); going offline")
    return offline_base(client, say)


def wheelhouse(root: Path, say: Say) -> Path:
    """Third-party wheels (cached by requirement set) with the list the image installs, and a
    fresh wheel of this checkout in a folder of its own: the image's third-party layer mounts
    only the first, so a change to this package alone reinstalls just the package."""
    requirements = _requirements(root)
    house = root / "build" / "wheelhouse"
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    target = ["--python-version", PYTHON_VERSION, "--implementation", "cp", *platforms]
    if wheels.fill(house, requirements, say, pip_args=target):
        say(f"wheelhouse: downloaded {len(requirements)} requirements and their closure")
    else:
        say("wheelhouse: third-party wheels cached")
    listing = house / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if not listing.is_file() or listing.read_text() != wanted:
        listing.write_text(wanted)
    for old in house.glob("llenergymeasure-*.whl"):  # left by builds that kept it here
        old.unlink()
    wheels.project_wheel(root, root / "build" / f"{house.name}-project", say)
    return house


def build_cpu_image(base: str | None = None, say: Say = print, force: bool = False) -> str:
    """Build (or reuse) `llenergymeasure/cpu`; returns the image ID."""
    root = source_root()
    client = docker.from_env()
    base_ref = resolve_base(client, say, base)
    base_id = client.images.get(base_ref).id
    dockerfile = root / "images" / "cpu" / "Dockerfile"
    inputs = hashlib.sha256(
        "\n".join(
            [
                dockerfile.read_text(),
                *_requirements(root),
                _hash_tree(root),
                base_id,
            ]
        ).encode()
    ).hexdigest()[:32]
    latest = f"{CPU_REPO}:latest"
    if not force and _image_label(client, latest, INPUTS_LABEL) == inputs:
        image_id = client.images.get(latest).id
        say(f"image: {latest} is current (inputs {inputs[:12]}), {short_id(image_id)}")
        return image_id
    house = wheelhouse(root, say)
    say(f"image: building {CPU_REPO}:{__version__} on {base_ref}")
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    run(
        [
            _docker_cli(),
            "build",
            "-q",
            # Everything comes from the wheelhouse; also works on engines without a bridge.
            "--network=none",
            "-f",
            str(dockerfile),
            "--build-arg",
            f"BASE_IMAGE={base_ref}",
            "--label",
            f"{INPUTS_LABEL}={inputs}",
            "-t",
            f"{CPU_REPO}:{__version__}",
            "-t",
            latest,
            str(house.parent),
        ],
        say,
        env=env,
    )
    image_id = client.images.get(latest).id
    say(f"image: {latest} built, {short_id(image_id)}")
    return image_id
