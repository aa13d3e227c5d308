"""Models and datasets named by hub id, resolved in the pre-flight as images are: each to a
snapshot folder at a commit, before anything is written or measured.

Why before: an experiment container has no network (README: Security). It cannot download,
it holds no token, and nothing but the engine touches the network interface while energy is
measured. So the pre-flight runs one **fetch container** per image that needs it (the study's
own image: it has the hub client; `llem-experiment --fetch`), under the same restrictions as an
experiment but with the bridge network and the token where the study is online:
- the user's own hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
  `~/.cache/huggingface/hub`) mounted read-only: what is there is used, never changed; the
  token file beside it is never mounted;
- llem's own hub cache (`$LLEM_CACHE_DIR/hf-hub`, else `~/.cache/llenergymeasure/hf-hub`),
  the only folder a fetch writes: created by llem and, when llem runs as root, handed to the
  containers' user (that folder alone, never recursively).
A study that is `offline` fetches nothing: what neither cache holds is one pre-flight error.
Each run then gets the cache that holds its snapshot, read-only, and its `model` (or dataset
`name`) becomes the snapshot folder inside it; the commit goes into its run context.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
from pydantic import ValidationError

from llenergymeasure.contract.backends import SECRET_ENV
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.hub import (
    FETCH_REQUEST_FILE,
    FETCHED_FILE,
    LLEM_HUB_DIR,
    USER_HUB_DIR,
    FetchedItem,
    FetchReport,
    FetchRequest,
    HubItem,
    is_hub_id,
)
from llenergymeasure.contract.prompt_sources import HFDatasetPrompts
from llenergymeasure.contract.workdir import WorkPaths, atomic_write_json
from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.orchestrator.machine.caches import (
    llem_cache_root,
    llem_hub_cache,
    owned_folder,
    user_hub_cache,
)
from llenergymeasure.orchestrator.machine.container import (
    ContainerSpec,
    owner_labels,
    run_container,
)
from llenergymeasure.orchestrator.machine.container_user import BASE_ULIMITS, ContainerUser
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.paths import host_path, looks_like_path
from llenergymeasure.study.untrusted import UntrustedFile, read_bytes
from llenergymeasure.study.work_files import log_tail

FETCH_TIMEOUT_S = 24 * 3600.0  # a large model on a slow link; the stall check is off
FETCHED_CAP = 4 << 20
FETCH_LABEL = "llem.fetch"


def hub_items(config: ExperimentConfig, study_file_dir: Path) -> list[tuple[str, HubItem]]:
    """(config field, item) for each hub repository `config` names: the model unless it is a
    local folder, a dataset unless it is a path."""
    found: list[tuple[str, HubItem]] = []
    model = config.model
    local = looks_like_path(model) or host_path(model, study_file_dir).is_dir()
    if not local and is_hub_id(model):
        found.append(("model", HubItem(repo_id=model, revision=config.revision)))
    prompts = config.prompts
    name = prompts.name if isinstance(prompts, HFDatasetPrompts) else ""
    if name and not looks_like_path(name) and is_hub_id(name):
        found.append(("prompts.name", HubItem(repo_id=name, repo_type="dataset")))
    return found


def inside_path(fetched: FetchedItem) -> tuple[Path, str, str]:
    """(host cache folder, its mount point, the snapshot folder in the container)."""
    if fetched.cache == "user":
        return user_hub_cache(), USER_HUB_DIR, f"{USER_HUB_DIR}/{fetched.path}"
    return llem_hub_cache(), LLEM_HUB_DIR, f"{LLEM_HUB_DIR}/{fetched.path}"


@dataclass
class HubResolver:
    """Runs the pre-flight's fetch containers and reads their answers."""

    client: docker.DockerClient
    user: ContainerUser
    pids_limit: int | None
    online: bool

    def resolve(
        self, runs: list[PlannedRun], images: dict[str, ResolvedImage], study_file_dir: Path
    ) -> dict[str, FetchedItem]:
        """item key -> where it is; every problem at once as one UserError."""
        by_image: dict[str, dict[str, HubItem]] = {}
        for run in runs:
            for _, item in hub_items(run.config, study_file_dir):
                image = images[run.config.backend].id
                if not any(item.key in wanted for wanted in by_image.values()):
                    by_image.setdefault(image, {})[item.key] = item
        found: dict[str, FetchedItem] = {}
        for image, items in by_image.items():
            found.update({f.item.key: f for f in self._fetch(image, list(items.values()))})
        problems = [f"{f.item.key}: {f.problem}" for f in found.values() if f.cache is None]
        if problems:
            raise UserError(
                "hub repositories the study needs could not be had: " + "; ".join(problems),
                hint=(
                    "fix the id or revision; for a gated or private one set HF_TOKEN"
                    if self.online
                    else "fetch them first (run the study with offline: false), or put them "
                    f"in {user_hub_cache()}"
                ),
            )
        return found

    def _fetch(self, image_id: str, items: list[HubItem]) -> list[FetchedItem]:
        llem_cache = llem_hub_cache()
        owned_folder(llem_cache, self.user)
        work_root = owned_folder(llem_cache_root() / "fetch", self.user)
        workdir = Path(tempfile.mkdtemp(prefix="fetch-", dir=work_root))
        try:
            self.user.hand_over(workdir)
            atomic_write_json(
                workdir / FETCH_REQUEST_FILE, FetchRequest(items=items, online=self.online)
            )
            exit_ = run_container(
                self.client, self._spec(image_id, workdir), FETCH_TIMEOUT_S, None, StopState()
            )
            try:
                report = FetchReport.model_validate_json(
                    read_bytes(workdir / FETCHED_FILE, FETCHED_CAP)
                )
            except (OSError, UntrustedFile, ValidationError) as error:
                ended = exit_.engine_error or f"exit {exit_.exit_code}"
                raise UserError(
                    f"the fetch container (image {short_id(image_id)}) gave no answer ({ended}; "
                    f"{error}); its log ends: {log_tail(workdir / WorkPaths.CONTAINER_LOG, 5)}",
                    hint="does the image have llem-experiment with --fetch (rebuild it with "
                    "`llem images build`)?",
                ) from None
            answered = {found.item.key: found for found in report.items}
            return [
                answered.get(item.key) or FetchedItem(item=item, cache=None, problem="no answer")
                for item in items
            ]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _spec(self, image_id: str, workdir: Path) -> ContainerSpec:
        mounts = {str(llem_hub_cache()): {"bind": LLEM_HUB_DIR, "mode": "rw"}}
        if user_hub_cache().is_dir():
            mounts[str(user_hub_cache())] = {"bind": USER_HUB_DIR, "mode": "ro"}
        environment = {"HF_HOME": "/tmp/hf-home", "HF_HUB_DISABLE_TELEMETRY": "1"}
        if self.online:  # the token only where it is used: a fetch with a network
            environment.update(from_host((*SECRET_ENV, "HF_ENDPOINT")))
        return ContainerSpec(
            image_id=image_id,
            name=f"llem-fetch-{os.getpid()}-{workdir.name}",
            labels={FETCH_LABEL: "1", **owner_labels()},
            workdir=workdir,
            user=self.user.spec,
            mounts=mounts,
            environment=environment,
            network_none=not self.online,
            pids_limit=self.pids_limit,
            ulimits=dict(BASE_ULIMITS),
            command=["--fetch"],
        )


def from_host(names: Iterable[str]) -> dict[str, str]:
    """The named variables of the host's environment that are set: all a container gets from
    it (experiments: their backend's allow-list; fetches: also the hub token)."""
    return {name: os.environ[name] for name in names if name in os.environ}
