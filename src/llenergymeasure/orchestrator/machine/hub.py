"""Models and datasets named by hub id, resolved in the pre-flight as images are: each to a
snapshot folder at a commit, before anything is written or measured.

Why before: an experiment container has no network (README: Security). It cannot download,
it holds no token, and nothing but the engine touches the network interface while energy is
measured. So the pre-flight resolves them in two steps, each a container:

1. **Lookup**, in the study's own image (`llem-experiment --fetch`), exposed as an experiment
   is: no network, no token, nothing writable but its work folder; each repository's folder of
   the user's hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`)
   and of llem's (`caches.llem_hub_cache`) mounted read-only, where it exists. What is there is
   used, never changed; the token file beside the user's cache is never mounted.
2. **Download**, only where the study is online and the lookup missed something: **llem's own
   fetch image** (`imagebuild/fetch_image.py`, built on demand, resolved to its image ID and
   run by ID; never the study's image), the only container llem gives a network. It mounts,
   per repository, the user's folder read-only and llem's folder (and the hub client's lock
   folder for it) writable, for this fetch only (`caches.writable_for_fetch`); it has a memory
   limit, the process limit of the study, and a stall check: no byte written for
   FETCH_STALL_S ends it. It is first run without a token; only the repositories the hub
   refused for want of one (gated, private) are asked again, by a second fetch container with
   `HF_TOKEN` (if you set one). A token lives in that container's environment only.

A study that is `offline` downloads nothing: what neither cache holds is one pre-flight error.
Each run then gets the repository folder that holds its snapshot, read-only, and its `model`
(or dataset `name`) becomes the snapshot folder inside it; the commit goes into its run context.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
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
from llenergymeasure.contract.workdir import WorkPaths, atomic_write_json
from llenergymeasure.errors import UserError
from llenergymeasure.ids import short_id
from llenergymeasure.imagebuild.fetch_image import ensure_fetch_image
from llenergymeasure.orchestrator.machine.caches import (
    HUB_LOCKS,
    llem_cache_root,
    llem_hub_cache,
    owned_folder,
    user_hub_cache,
    writable_for_fetch,
)
from llenergymeasure.orchestrator.machine.container import (
    DEADLINE_MARGIN_S,
    ContainerExit,
    ContainerSpec,
    KillReason,
    owner_labels,
    run_container,
)
from llenergymeasure.orchestrator.machine.container_user import BASE_ULIMITS, ContainerUser
from llenergymeasure.orchestrator.machine.engine import ResolvedImage, resolve_image
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.paths import host_path, looks_like_path
from llenergymeasure.study.untrusted import UntrustedFile, read_bytes
from llenergymeasure.study.work_files import log_tail

LOOKUP_TIMEOUT_S = 600.0  # the caches only: seconds, whatever the model's size
FETCH_TIMEOUT_S = 24 * 3600.0  # a large model on a slow link; the stall check ends a dead one
FETCH_STALL_S = 300.0  # no byte written to llem's cache for this long: the download stalled
FETCH_MEM_LIMIT = "4g"  # the hub client's buffers (Xet's scale with memory) and its /tmp
FETCHED_CAP = 4 << 20
FETCH_LABEL = "llem.fetch"  # value: "lookup" or "download"


def hub_items(config: ExperimentConfig, study_file_dir: Path) -> list[tuple[str, HubItem]]:
    """(config field, item) for each hub repository `config` names: the model unless it is a
    local folder, a dataset unless it is a path."""
    found: list[tuple[str, HubItem]] = []
    model = config.model
    local = looks_like_path(model) or host_path(model, study_file_dir).is_dir()
    if not local and is_hub_id(model):
        found.append(("model", HubItem(repo_id=model, revision=config.revision)))
    name = config.prompts.dataset
    if name and not looks_like_path(name) and is_hub_id(name):
        found.append(("prompts.name", HubItem(repo_id=name, repo_type="dataset")))
    return found


def inside_path(fetched: FetchedItem) -> tuple[Path, str, str]:
    """(the host folder of the snapshot's repository, its mount point, the snapshot folder in
    the container): an experiment gets that one repository of the cache, read-only."""
    assert fetched.path is not None
    repository = fetched.path.split("/", 1)[0]
    cache, inside = (
        (user_hub_cache(), USER_HUB_DIR)
        if fetched.cache == "user"
        else (llem_hub_cache(), LLEM_HUB_DIR)
    )
    return cache / repository, f"{inside}/{repository}", f"{inside}/{fetched.path}"


def fetch_spec(
    image_id: str,
    workdir: Path,
    user: ContainerUser,
    items: list[HubItem],
    *,
    download: bool,
    token: bool,
    pids_limit: int | None,
) -> ContainerSpec:
    """The container of one lookup (`download` False: the study's image, no network, all
    read-only) or one download (llem's fetch image: network, its repositories' folders of
    llem's cache writable, the token only where `token`)."""
    mounts: dict[str, dict[str, str]] = {}
    for folder in sorted({item.folder for item in items}):
        user_repo = user_hub_cache() / folder
        if user_repo.is_dir():
            mounts[str(user_repo)] = {"bind": f"{USER_HUB_DIR}/{folder}", "mode": "ro"}
        llem_repo = llem_hub_cache() / folder
        if download:
            locks = llem_hub_cache() / HUB_LOCKS / folder
            mounts[str(locks)] = {"bind": f"{LLEM_HUB_DIR}/{HUB_LOCKS}/{folder}", "mode": "rw"}
            mounts[str(llem_repo)] = {"bind": f"{LLEM_HUB_DIR}/{folder}", "mode": "rw"}
        elif llem_repo.is_dir():
            mounts[str(llem_repo)] = {"bind": f"{LLEM_HUB_DIR}/{folder}", "mode": "ro"}
    environment = {"HF_HOME": "/tmp/hf-home", "HF_HUB_DISABLE_TELEMETRY": "1"}
    if download:
        # Xet's chunk cache would fill the container's 1 GB /tmp: downloads go straight to blobs.
        environment["HF_XET_CHUNK_CACHE_SIZE_BYTES"] = "0"
        environment.update(from_host((*SECRET_ENV, "HF_ENDPOINT") if token else ("HF_ENDPOINT",)))
    else:
        environment["HF_HUB_OFFLINE"] = "1"
    return ContainerSpec(
        image_id=image_id,
        name=f"llem-fetch-{os.getpid()}-{workdir.name}",
        labels={FETCH_LABEL: "download" if download else "lookup", **owner_labels()},
        workdir=workdir,
        user=user.spec,
        mounts=mounts,
        environment=environment,
        network_none=not download,
        mem_limit=FETCH_MEM_LIMIT,
        pids_limit=pids_limit,
        ulimits=dict(BASE_ULIMITS),
        command=None if download else ["--fetch"],
    )


def no_answer(exit_: ContainerExit, image: str, download: bool, log: str) -> UserError:
    """Why a lookup or download container left no answer, as one message with its fix."""
    if exit_.killed_for == KillReason.STALL:
        return UserError(
            f"the hub download (llem's fetch image {image}) wrote nothing for "
            f"{FETCH_STALL_S:.0f} s and was stopped; its log ends: {log}",
            hint="check the network (or HF_ENDPOINT) and run again: what was downloaded is kept",
        )
    if exit_.oom_killed:
        return UserError(
            f"the hub {'download' if download else 'lookup'} (image {image}) ran out of its "
            f"{FETCH_MEM_LIMIT} memory limit; its log ends: {log}",
            hint="run again; if it recurs, download the repository into your Hugging Face "
            "cache yourself (`hf download REPO`)",
        )
    ended = exit_.engine_error or f"exit {exit_.exit_code}"
    if download:
        return UserError(
            f"the hub download (llem's fetch image {image}) gave no answer ({ended}); its log "
            f"ends: {log}",
            hint="rebuild the fetch image (`llem images build fetch --force`) and run again",
        )
    return UserError(
        f"the hub lookup (the study's image {image}) gave no answer ({ended}); its log ends: {log}",
        hint="does the image have llem-experiment with --fetch (rebuild it with "
        "`llem images build`)?",
    )


def checked(item: HubItem, answer: FetchedItem | None) -> FetchedItem:
    """A container's answer for `item`, if it names a snapshot of that repository (a lookup runs
    the study's image: its answer is read as untrusted)."""
    if answer is None:
        return FetchedItem(item=item, cache=None, problem="no answer")
    if answer.cache is not None and not (answer.path or "").startswith(f"{item.folder}/snapshots/"):
        return FetchedItem(
            item=item, cache=None, problem=f"the answer names another folder ({answer.path})"
        )
    return answer.model_copy(update={"item": item})


@dataclass
class HubResolver:
    """Runs the pre-flight's lookup and download containers and reads their answers."""

    client: docker.DockerClient
    user: ContainerUser
    pids_limit: int | None
    online: bool
    say: Callable[[str], None]  # pre-flight notes: which image downloaded what

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
            found.update(self._run(image, list(items.values()), download=False))
        missing = [f.item for f in found.values() if f.cache is None]
        if self.online and missing:
            found.update(self._download(missing))
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

    def _download(self, items: list[HubItem]) -> dict[str, FetchedItem]:
        """`items` downloaded by llem's fetch image: without a token, then, where the hub
        refused that and the host has a token, again with it."""
        tag = ensure_fetch_image(self.client, self.say)
        image = resolve_image(self.client, tag, "fetch")
        self.say(
            f"hub: downloading {', '.join(i.key for i in items)} with llem's fetch image {tag} "
            f"({short_id(image.id)}), the only container with a network"
        )
        found = self._run(image.id, items, download=True)
        refused = [f.item for f in found.values() if f.needs_token]
        if refused and any(name in os.environ for name in SECRET_ENV):
            self.say(
                f"hub: {', '.join(i.key for i in refused)} refused without a token; "
                "asking again with HF_TOKEN"
            )
            found.update(self._run(image.id, refused, download=True, token=True))
        return found

    def _run(
        self, image_id: str, items: list[HubItem], *, download: bool, token: bool = False
    ) -> dict[str, FetchedItem]:
        work_root = owned_folder(llem_cache_root() / "fetch", self.user)
        workdir = Path(tempfile.mkdtemp(prefix="fetch-", dir=work_root))
        try:
            self.user.hand_over(workdir)
            atomic_write_json(
                workdir / FETCH_REQUEST_FILE,
                FetchRequest(
                    items=items,
                    online=download,
                    # the fetch's own limits, past the host's: they hold if llem dies
                    stall_s=FETCH_STALL_S + DEADLINE_MARGIN_S if download else None,
                    deadline_s=FETCH_TIMEOUT_S + DEADLINE_MARGIN_S if download else None,
                ),
            )
            spec = fetch_spec(
                image_id,
                workdir,
                self.user,
                items,
                download=download,
                token=token,
                pids_limit=self.pids_limit,
            )
            if download:
                with writable_for_fetch(sorted({i.folder for i in items}), self.user):
                    exit_ = run_container(
                        self.client, spec, FETCH_TIMEOUT_S, FETCH_STALL_S, StopState()
                    )
            else:
                exit_ = run_container(self.client, spec, LOOKUP_TIMEOUT_S, None, StopState())
            try:
                report = FetchReport.model_validate_json(
                    read_bytes(workdir / FETCHED_FILE, FETCHED_CAP)
                )
            except (OSError, UntrustedFile, ValidationError):
                log = log_tail(workdir / WorkPaths.CONTAINER_LOG, 5)
                raise no_answer(exit_, short_id(image_id), download, log) from None
            answered = {found.item.key: found for found in report.items}
            return {item.key: checked(item, answered.get(item.key)) for item in items}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def from_host(names: Iterable[str]) -> dict[str, str]:
    """The named variables of the host's environment that are set: all a container gets from
    it (experiments: their backend's allow-list; a download: also the hub token, when the hub
    asked for one)."""
    return {name: os.environ[name] for name in names if name in os.environ}
