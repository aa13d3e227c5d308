"""What one planned run becomes on the host: its `config.json` and its container's settings.

Local model folders: a run whose `model` names an existing folder on the host (absolute, `~/...`,
or relative to the study file's folder) gets that folder mounted read-only at
`/llem/models/<hash8>-<folder name>`, and its `config.json` names that in-container path. The
plan and manifest keep the host path as written. Anything else is a hub id; a `model` that looks
like a path (`/`, `./`, `../`, `~`) but names no folder is refused before any run. JSONL prompt
files, and `hf_dataset` prompt sources named by a local path, are mounted the same way, read-only
under `/llem/prompts/`.

The Hugging Face cache (`$HF_HOME`, else `~/.cache/huggingface`) is mounted at `/llem/hf-cache`
(read-only when the study is offline, read-write otherwise so downloads persist). Containers run
as `container_user.ContainerUser`, never root, under the study's process and resource limits.
Secrets such as HF_TOKEN pass through the environment only; they are never written to any file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.contract.backends import COMMON_ENV_ALLOWLIST, spec_of
from llenergymeasure.contract.config import ExperimentConfig, HFDatasetPrompts, JsonlPrompts
from llenergymeasure.contract.container import (
    ENGINE_CACHE_DIR,
    HF_CACHE_DIR,
    MODELS_DIR,
    PROMPTS_DIR,
    backend_environment,
)
from llenergymeasure.contract.run import RunContext, RunRequest
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.container import (
    OWNER_HOST_LABEL,
    OWNER_PID_LABEL,
    RUN_LABEL,
    STUDY_LABEL,
    ContainerSpec,
)
from llenergymeasure.orchestrator.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.engine import ResolvedImage
from llenergymeasure.orchestrator.slots import Slot
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
    prompts = config.prompts
    if isinstance(prompts, JsonlPrompts):
        found.append(
            LocalInput("prompt file", "prompts.path", prompts.path, PROMPTS_DIR, Path.is_file)
        )
    if isinstance(prompts, HFDatasetPrompts) and looks_like_path(prompts.name):
        found.append(LocalInput("dataset", "prompts.name", prompts.name, PROMPTS_DIR, Path.exists))
    return found


def check_local_inputs(runs: list[PlannedRun], study_file_dir: Path, user: ContainerUser) -> None:
    """Every local input a run names exists on the host and is readable by the containers'
    user, before any run."""
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


def _with_value(config: ExperimentConfig, field: str, value: str) -> ExperimentConfig:
    if field == "model":
        return config.model_copy(update={"model": value})
    prompts = config.prompts.model_copy(update={field.removeprefix("prompts."): value})
    return config.model_copy(update={"prompts": prompts})


def _mount_point(root: str, host: Path) -> str:
    return f"{root}/{hashlib.sha256(str(host).encode()).hexdigest()[:8]}-{host.name}"


def hf_cache_dir() -> Path:
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")


def engine_cache_dir() -> Path:
    """Host folder of compiled TensorRT engines ($LLEM_ENGINE_CACHE, else ~/.cache/...)."""
    default = Path.home() / ".cache" / "llenergymeasure" / "tensorrt-engines"
    return Path(os.environ.get("LLEM_ENGINE_CACHE") or default)


def prepare_caches(ctx: StudyContext, backends: set[str]) -> None:
    """Once per study, before any run: the host caches containers write into exist and belong
    to the containers' user (the HF cache of an online study: downloads land there; the
    TensorRT engine cache)."""
    if not ctx.offline:
        cache = hf_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        ctx.user.hand_over(cache, recursive=True)
    if "tensorrt" in backends:
        engines = engine_cache_dir()
        engines.mkdir(parents=True, exist_ok=True)
        ctx.user.hand_over(engines)


def build(
    run: PlannedRun, ctx: StudyContext, image: ResolvedImage, workdir: Path, slot: Slot
) -> tuple[RunRequest, ContainerSpec]:
    """The run's config.json and container, in `slot` (its GPUs, granted by UUID where the
    host's NVML named them, or its CPUs)."""
    config = run.config
    mounts: dict[str, dict[str, str]] = {}
    for item in local_inputs(config, ctx.study_file_dir):
        host = host_path(item.value, ctx.study_file_dir)
        inside = _mount_point(item.mount_root, host)
        mounts[str(host)] = {"bind": inside, "mode": "ro"}
        config = _with_value(config, item.field, inside)
    environment = {"HF_HOME": HF_CACHE_DIR, "PYTHONUNBUFFERED": "1"}
    cache = hf_cache_dir()
    if not ctx.offline:
        cache.mkdir(parents=True, exist_ok=True)
    if cache.is_dir():
        mounts[str(cache)] = {"bind": HF_CACHE_DIR, "mode": "ro" if ctx.offline else "rw"}
    if ctx.offline:
        environment.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    environment.update(backend_environment(config))
    if config.backend == "tensorrt":
        engines = engine_cache_dir()
        engines.mkdir(parents=True, exist_ok=True)
        mounts[str(engines)] = {"bind": ENGINE_CACHE_DIR, "mode": "rw"}
    # From the host's environment only these, when set; nothing else reaches the container.
    for name in COMMON_ENV_ALLOWLIST + spec_of(config.backend).env_allowlist:
        if name in os.environ:
            environment[name] = os.environ[name]
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
            offline=ctx.offline,
        ),
    )
    spec = ContainerSpec(
        image_id=image.id,
        name=f"llem-{os.getpid()}-{ctx.study_id[-8:]}-{run.run_id}",
        labels={
            STUDY_LABEL: ctx.study_id,
            RUN_LABEL: run.run_id,
            OWNER_PID_LABEL: str(os.getpid()),
            OWNER_HOST_LABEL: os.uname().nodename,
        },
        workdir=workdir,
        user=ctx.user.spec,
        mounts=mounts,
        environment=environment,
        gpu_devices=uuids or [str(i) for i in gpus],
        cpuset=slot.cpuset,
        network_none=ctx.offline,
        shm_size=shm_size_for(config),
        mem_limit=ctx.mem_limit,
        pids_limit=ctx.limits.pids_limit,
        ulimits=ctx.limits.ulimits_for(config.gpu_count),
    )
    return request, spec
