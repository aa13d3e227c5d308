"""What the engine holds of the project's images: ID, repo digest, size and the labels every
image of `images/` carries (backend, engine, engine version, source, version).
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
import docker.errors

# Set by every Dockerfile under images/ (OCI annotation keys plus the project's own).
LABEL_BACKEND = "io.llenergymeasure.backend"
LABEL_ENGINE = "io.llenergymeasure.engine"
LABEL_ENGINE_VERSION = "io.llenergymeasure.engine.version"
PROJECT_REPO_PREFIX = "llenergymeasure/"


@dataclass(frozen=True)
class ImageRow:
    """One tag of a project image, for `llem images list`."""

    tag: str
    image_id: str
    repo_digest: str | None
    size_mb: float
    backend: str | None
    engine: str | None
    engine_version: str | None
    created: str


def _labels(image: docker.models.images.Image) -> dict[str, str]:
    return dict(image.labels or {})


def project_images(client: docker.DockerClient) -> list[ImageRow]:
    """Every tag under `llenergymeasure/` (helper images such as the offline base included)."""
    rows = []
    for image in client.images.list():
        tags = [tag for tag in image.tags if tag.startswith(PROJECT_REPO_PREFIX)]
        labels = _labels(image)
        digests = image.attrs.get("RepoDigests") or []
        for tag in tags:
            rows.append(
                ImageRow(
                    tag=tag,
                    image_id=image.id,
                    repo_digest=digests[0] if digests else None,
                    size_mb=image.attrs.get("Size", 0) / 1e6,
                    backend=labels.get(LABEL_BACKEND),
                    engine=labels.get(LABEL_ENGINE),
                    engine_version=labels.get(LABEL_ENGINE_VERSION),
                    created=str(image.attrs.get("Created", ""))[:19],
                )
            )
    return sorted(rows, key=lambda row: row.tag)
