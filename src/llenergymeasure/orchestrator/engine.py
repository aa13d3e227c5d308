"""The Docker engine as the host sees it: connection, image resolution, GPU runtime check."""

from __future__ import annotations

from dataclasses import dataclass

import docker
import docker.errors

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.image_inventory import (
    LABEL_ENGINE,
    LABEL_ENGINE_VERSION,
    PROJECT_REPO_PREFIX,
)
from llenergymeasure.orchestrator.image_lock import LockedImage


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


def connect() -> docker.DockerClient:
    """A client whose engine answers, or a UserError naming the fix."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as error:
        raise UserError(
            f"the Docker engine is not reachable ({str(error).splitlines()[0][:160]})",
            hint="start it (e.g. `sudo systemctl start docker`, or `dockerd &`) and make sure "
            "you may use its socket; DOCKER_HOST selects another engine",
        ) from None
    return client


def engine_answers() -> bool:
    """Whether the engine answers a new connection now (DOCKER_HOST, as `connect`).

    A fresh client, not the study's: while a daemon shuts down, the study client's kept-alive
    connections may still answer although the socket is already gone.
    """
    try:
        fresh = docker.from_env(timeout=10)
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
