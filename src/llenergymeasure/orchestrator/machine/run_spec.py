"""What one planned run becomes on the host: its `config.json` and its container's settings.

Local model folders: a run whose `model` names an existing folder on the host (absolute, `~/...`,
or relative to the study file's folder) gets that folder mounted read-only at
`/llem/models/<hash8>-<folder name>`, and its `config.json` names that in-container path. The
plan and manifest keep the host path as written. A model folder that is a snapshot of a hub cache
(`.../models--org--name/snapshots/<commit>`, whose files link to `../../blobs/`) is mounted with
its repository folder, so the links resolve inside the container. Anything else is a hub id; a
`model` that looks like a path (`/`, `./`, `../`, `~`) but names no folder is refused before any
run. JSONL prompt files, and `hf_dataset` prompt sources named by a local path, are mounted the
same way, read-only under `/llem/prompts/`.

Hub ids were resolved by the pre-flight (`hub.py`) to snapshot folders: the repository folder of
the cache that holds one is mounted read-only and the config names the snapshot inside it. An
engine cache is the image's own folder of it (`caches.image_engine_cache`, created when the run
is built), the one writable mount besides the work folder. An experiment container has no
network and no secret: the backend's short allow-list of the host's variables is all it gets
from the host's environment. Containers run as `container_user.ContainerUser`, never root,
under the study's process and resource limits.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.container import (
    ENGINE_CACHE_DIR,
    MODELS_DIR,
    PROMPTS_DIR,
    backend_environment,
)
from llenergymeasure.contract.hub import FetchedItem
from llenergymeasure.contract.prompt_files import PromptFileError, read_requests
from llenergymeasure.contract.run import RunContext, RunRequest
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.machine.caches import (
    engine_cache_dir,
    image_engine_cache,
    llem_folder,
)
from llenergymeasure.orchestrator.machine.container import (
    DEADLINE_MARGIN_S,
    RUN_LABEL,
    STUDY_LABEL,
    ContainerSpec,
    owner_labels,
)
from llenergymeasure.orchestrator.machine.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.hub import from_host, hub_items, inside_path
from llenergymeasure.orchestrator.machine.slots import Slot
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.paths import host_path, looks_like_path


def shm_size_for(config: ExperimentConfig) -> str | None:
    """/dev/shm only where the engine's processes talk through it (the backend table says
    how much); one PyTorch process needs none beyond the engine's default (64 MB)."""
    return spec_of(config.backend).shm_size(config.gpu_count)


@dataclass(frozen=True)
class StudyContext:
    study_id: str
    study_name: str
    study_file_dir: Path
    offline: bool
    user: ContainerUser
    limits: ContainerLimits
    gpu_uuids: dict[int, str] = field(default_factory=dict)  # host index -> UUID, where known
    max_parallel: int = 1
    mem_limit: str | None = None
    hub: dict[str, FetchedItem] = field(default_factory=dict)  # item key -> its snapshot


@dataclass(frozen=True)
class LocalInput:
    """A host path a run reads: a model folder, a JSONL prompt file or a dataset folder."""

    what: str  # how messages name it
    field: str  # where the config holds it: "model", "prompts.path" or "prompts.name"
    value: str  # as the study file wrote it
    mount_root: str
    present: Callable[[Path], bool]


def local_inputs(config: ExperimentConfig, study_file_dir: Path) -> list[LocalInput]:
    """The host paths `config` names. A `model` is one when it looks like a path or names an
    existing folder; anything else is a hub id (and so is a dataset name that is not a path)."""
    found = []
    if looks_like_path(config.model) or host_path(config.model, study_file_dir).is_dir():
        found.append(LocalInput("model folder", "model", config.model, MODELS_DIR, Path.is_dir))
    prompt_file, dataset = config.prompts.prompt_file, config.prompts.dataset
    if prompt_file is not None:
        found.append(
            LocalInput("prompt file", "prompts.path", prompt_file, PROMPTS_DIR, Path.is_file)
        )
    if dataset is not None and looks_like_path(dataset):
        found.append(LocalInput("dataset", "prompts.name", dataset, PROMPTS_DIR, Path.exists))
    return found


def check_local_inputs(runs: list[PlannedRun], study_file_dir: Path, user: ContainerUser) -> None:
    """Every local input a run names exists on the host, is readable by the containers' user
    and has no link the container could not follow, and a prompt file gives the run's
    requests, before any run."""
    check_prompt_files([run.config for run in runs], study_file_dir)
    seen: set[tuple[str, str]] = set()
    for run in runs:
        for item in local_inputs(run.config, study_file_dir):
            if (item.field, item.value) in seen:
                continue
            seen.add((item.field, item.value))
            path = host_path(item.value, study_file_dir)
            if not item.present(path):
                raise UserError(
                    f"{item.what} {item.value!r} (run {run.run_id}) does not exist: {path}",
                    hint=f"fix {item.field} (relative paths start from the study file's folder)",
                )
            user.check_readable(path, item.what)
            _check_links(path, item.what)


def check_prompt_files(configs: list[ExperimentConfig], study_file_dir: Path) -> None:
    """Each prompt file a config names, where the host can read it, parses into that config's
    n_prompts requests (each source and count read once); a UserError naming the record."""
    read: set[tuple[str, int]] = set()
    for config in configs:
        source = config.prompts
        if source.prompt_file is None:
            continue
        key = (source.model_dump_json(), config.n_prompts)
        path = host_path(source.prompt_file, study_file_dir)
        if key in read or not path.is_file():  # a missing file: the presence check names it
            continue
        read.add(key)
        try:
            read_requests(source, config.n_prompts, path)
        except PromptFileError as exc:
            raise UserError(
                f"prompt file of prompts.source {source.source}: {exc}",
                hint="fix the file or prompts.* (see README: Serving workloads)",
            ) from exc


def mounted_as(path: Path) -> tuple[Path, str]:
    """What to mount for a local input, and the input's path inside that mount ("" for the
    mount itself): a hub cache snapshot folder brings its repository folder along."""
    snapshots = path.parent
    repo = snapshots.parent
    if (
        path.is_dir()
        and snapshots.name == "snapshots"
        and repo.name.startswith(("models--", "datasets--"))
        and (repo / "blobs").is_dir()
    ):
        return repo, f"snapshots/{path.name}"
    return path, ""


def _check_links(path: Path, what: str) -> None:
    """A folder whose links point outside what is mounted would load broken in the container."""
    if not path.is_dir():
        return
    mount, _ = mounted_as(path)
    top = mount.resolve()
    for entry in path.rglob("*"):
        if entry.is_symlink():
            target = entry.resolve()
            if top not in target.parents and target != top:
                raise UserError(
                    f"{what} {path} has a link that leaves it ({entry.relative_to(path)} -> "
                    f"{target}); the container sees only what is mounted",
                    hint=f"copy it with its links resolved (`cp -rL {path} NEW`) and use NEW",
                )


def _with_value(config: ExperimentConfig, field: str, value: str) -> ExperimentConfig:
    if field == "model":
        return config.model_copy(update={"model": value})
    prompts = config.prompts.model_copy(update={field.removeprefix("prompts."): value})
    return config.model_copy(update={"prompts": prompts})


def _mount_point(root: str, host: Path) -> str:
    return f"{root}/{hashlib.sha256(str(host).encode()).hexdigest()[:8]}-{host.name}"


def prepare_caches(ctx: StudyContext, backends: set[str]) -> None:
    """Once per study, before any run: each backend's engine cache exists and is llem's own
    (each run's image gets its folder in it when the run is built)."""
    for backend in sorted(backends):
        folder = engine_cache_dir(backend)
        if folder is not None:
            llem_folder(folder, ctx.user)


def build(
    run: PlannedRun,
    ctx: StudyContext,
    image: ResolvedImage,
    workdir: Path,
    slot: Slot,
    timeout_s: float | None = None,
) -> tuple[RunRequest, ContainerSpec]:
    """The run's config.json and container, in `slot` (its GPUs, granted by UUID where the
    host's NVML named them, or its CPUs); `timeout_s`, the run's timeout, sets the container's
    own deadline (None: it has none)."""
    config = run.config
    mounts: dict[str, dict[str, str]] = {}
    for item in local_inputs(config, ctx.study_file_dir):
        host = host_path(item.value, ctx.study_file_dir)
        mount, inside = mounted_as(host)
        point = _mount_point(item.mount_root, mount)
        mounts[str(mount)] = {"bind": point, "mode": "ro"}
        config = _with_value(config, item.field, f"{point}/{inside}" if inside else point)
    commits: dict[str, str] = {}
    for field_name, hub_item in hub_items(config, ctx.study_file_dir):
        fetched = ctx.hub[hub_item.key]
        cache, point, snapshot = inside_path(fetched)
        mounts[str(cache)] = {"bind": point, "mode": "ro"}
        config = _with_value(config, field_name, snapshot)
        commits[hub_item.key] = fetched.commit or ""
    environment = {
        "HF_HOME": "/tmp/hf-home",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **backend_environment(config),
    }
    engine_cache = image_engine_cache(config.backend, image.id, ctx.user)
    if engine_cache is not None:
        mounts[str(engine_cache)] = {"bind": ENGINE_CACHE_DIR, "mode": "rw"}
    # From the host's environment only the backend's allow-list, when set: never a secret.
    environment.update(from_host(spec_of(config.backend).env_allowlist))
    gpus = list(slot.gpus)
    uuids = [ctx.gpu_uuids[i] for i in gpus if i in ctx.gpu_uuids]
    if len(uuids) != len(gpus):
        uuids = []
    request = RunRequest(
        config=config,
        context=RunContext(
            study_id=ctx.study_id,
            study_name=ctx.study_name,
            run_id=run.run_id,
            run_index=run.run_index,
            config_hash=run.config_hash,
            cycle=run.cycle,
            image_ref=image.ref,
            image_id=image.id,
            image_digest=image.digest,
            gpu_indices=gpus,
            gpu_uuids=uuids,
            cpuset=slot.cpuset,
            max_parallel=ctx.max_parallel,
            offline=True,
            hub_commits=commits,
            deadline_s=timeout_s + DEADLINE_MARGIN_S if timeout_s is not None else None,
        ),
    )
    spec = ContainerSpec(
        image_id=image.id,
        name=f"llem-{os.getpid()}-{ctx.study_id[-8:]}-{run.run_id}",
        labels={STUDY_LABEL: ctx.study_id, RUN_LABEL: run.run_id, **owner_labels()},
        workdir=workdir,
        user=ctx.user.spec,
        mounts=mounts,
        environment=environment,
        gpu_devices=uuids or [str(i) for i in gpus],
        cpuset=slot.cpuset,
        network_none=True,
        shm_size=shm_size_for(config),
        mem_limit=ctx.mem_limit,
        pids_limit=ctx.limits.pids_limit,
        ulimits=ctx.limits.ulimits_for(config.gpu_count),
    )
    return request, spec
