"""The container engine as the host sees it: connection, image resolution, GPU runtime check.

Two engines, one SDK: Docker, and podman through its Docker-compatible API socket (`podman
system service`, or the `podman.socket` unit). `ENGINES` is the one table of what differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import docker
import docker.errors

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.image_inventory import (
    LABEL_ENGINE,
    LABEL_ENGINE_VERSION,
    PROJECT_REPO_PREFIX,
)
from llenergymeasure.orchestrator.machine.image_lock import LockedImage


class ImageMissing(UserError):
    """The engine has no image by that reference."""


@dataclass(frozen=True)
class ResolvedImage:
    ref: str
    id: str
    digest: str | None  # repo digest (name@sha256:...); None for a locally built image
    engine: str | None = None  # from the image's labels, for the reader only
    engine_version: str | None = None

    def locked(self) -> LockedImage:
        """This image as a lock file entry."""
        return LockedImage(
            ref=self.ref,
            image_id=self.id,
            repo_digest=self.digest,
            engine=self.engine,
            engine_version=self.engine_version,
        )


@dataclass(frozen=True)
class EngineSpec:
    name: str
    start_hint: str
    # Where its socket is unless the environment says: None = the SDK's own default.
    socket_env: str
    default_socket: str | None
    # podman's compat API sets nofile/nproc of a container to the maximum when it is given any
    # ulimit but those; that fails where the engine lacks CAP_SYS_RESOURCE. They are stated.
    states_nofile_nproc: bool

    def base_url(self) -> str | None:
        return os.environ.get(self.socket_env) or self.default_socket


def _podman_socket() -> str:
    if os.geteuid() == 0:
        return "unix:///run/podman/podman.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return f"unix://{runtime}/podman/podman.sock"


ENGINES = {
    "docker": EngineSpec(
        "Docker",
        "start it (e.g. `sudo systemctl start docker`, or `dockerd &`) and make sure you may "
        "use its socket; DOCKER_HOST selects another engine",
        "DOCKER_HOST",
        None,
        states_nofile_nproc=False,
    ),
    "podman": EngineSpec(
        "podman",
        "start its API socket (`systemctl start podman.socket`, or `podman system service "
        "--time=0 &`); LLEM_PODMAN_SOCKET names another socket (unix:///path)",
        "LLEM_PODMAN_SOCKET",
        _podman_socket(),
        states_nofile_nproc=True,
    ),
}


def _client(engine: str, timeout: int) -> docker.DockerClient:
    url = ENGINES[engine].base_url()
    if url is None:
        return docker.from_env(timeout=timeout)
    return docker.DockerClient(base_url=url, timeout=timeout)


def connect(engine: str = "docker") -> docker.DockerClient:
    """A client whose engine answers, or a UserError naming the fix."""
    spec = ENGINES[engine]
    try:
        client = _client(engine, 120)
        client.ping()
    except (docker.errors.DockerException, OSError) as error:
        raise UserError(
            f"the {spec.name} engine is not reachable ({str(error).splitlines()[0][:160]})",
            hint=spec.start_hint,
        ) from None
    return client


def engine_answers(engine: str = "docker") -> bool:
    """Whether the engine answers a new connection now (as `connect` reaches it).

    A fresh client, not the study's: while a daemon shuts down, the study client's kept-alive
    connections may still answer although the socket is already gone.
    """
    try:
        fresh = _client(engine, 10)
    except (docker.errors.DockerException, OSError):
        return False
    try:
        fresh.ping()
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        fresh.close()
    return True


def resolve_image(client: docker.DockerClient, ref: str, backend: str) -> ResolvedImage:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        project = ref.startswith(PROJECT_REPO_PREFIX)
        target = ref.removeprefix(PROJECT_REPO_PREFIX).split(":")[0]
        hint = (
            f"build it: `llem images build {target}`"
            if project
            else f"pull it (`docker pull {ref}`)"
        ) + f", or name another image under `images: {{{backend}: ...}}` in the study"
        raise ImageMissing(
            f"image {ref!r} for backend {backend!r} is not present", hint=hint
        ) from None
    except docker.errors.DockerException as error:
        raise UserError(f"cannot inspect image {ref!r}: {error}") from None
    digests = image.attrs.get("RepoDigests") or []
    labels = image.labels or {}
    return ResolvedImage(
        ref=ref,
        id=image.id,
        digest=digests[0] if digests else None,
        engine=labels.get(LABEL_ENGINE),
        engine_version=labels.get(LABEL_ENGINE_VERSION),
    )


def require_nvidia_runtime(client: docker.DockerClient) -> None:
    """GPUs are granted through device requests; the engine needs the NVIDIA runtime/CDI."""
    info = client.info()
    runtimes = set((info.get("Runtimes") or {}).keys())
    cdi = any("nvidia" in spec for spec in (info.get("CDISpecDirs") or []))
    if "nvidia" not in runtimes and not cdi:
        raise UserError(
            "the study asks for GPUs but the Docker engine has no NVIDIA runtime "
            f"(runtimes: {', '.join(sorted(runtimes)) or 'none'})",
            hint="install the NVIDIA Container Toolkit and run "
            "`nvidia-ctk runtime configure --runtime=docker`, then restart dockerd; "
            "or set gpu_count: 0",
        )
