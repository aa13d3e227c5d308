"""Pre-flight of `llem run`: everything checked and resolved once, before anything is written.

Order: the study planned (`plan_study`; the CLI shows it); local inputs present and readable by
the containers' user; with --locked, the lock file read; the slot pools (every run fits); host
locks on the GPUs and, for CPU runs, the CPUs (before the engine and runtime checks, so a busy
GPU is named even where the NVIDIA runtime is missing); engine reachable; every image resolved
to its ID and digest; with --locked, each compared with the lock; the NVIDIA runtime when GPUs
are requested; each pool GPU's physical UUID. The confirmation above the cap is the CLI's
(`Preflight.needs_confirmation`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from llenergymeasure.config.loader import load_study
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.hub import FetchedItem
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout, run_spec
from llenergymeasure.orchestrator.container_user import (
    ContainerLimits,
    ContainerUser,
    engine_process_limits,
)
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.engine import (
    ENGINES,
    ImageMissing,
    ResolvedImage,
    connect,
    require_nvidia_runtime,
    resolve_image,
)
from llenergymeasure.orchestrator.host_gpus import gpu_uuids
from llenergymeasure.orchestrator.hub import HubResolver
from llenergymeasure.orchestrator.image_lock import (
    StudyLock,
    load_lock,
    lock_path_for,
    require_locked,
)
from llenergymeasure.orchestrator.locks import HostLocks
from llenergymeasure.orchestrator.slots import cpu_groups_for
from llenergymeasure.orchestrator.slurm import commands as slurm_commands
from llenergymeasure.orchestrator.slurm.probe import probe_shared_paths
from llenergymeasure.study.expand import Plan, expand
from llenergymeasure.study.hashing import design_hash
from llenergymeasure.study.paths import host_path


@dataclass
class RunOptions:
    resume: bool = False
    retry_failed: bool = False
    locked: bool = False
    mem_limit: str | None = None
    lock_dir: Path | None = None  # the host locks' folder (tests); default: locks.lock_dir()
    detach: bool = False  # Slurm: submit every run, then return


@dataclass(frozen=True)
class PlannedStudy:
    """A study file read and expanded, with the folder its relative paths resolve from."""

    path: Path
    study: StudyConfig
    plan: Plan
    source_dir: Path


def plan_study(
    study_path: Path, adjust: Callable[[StudyConfig], StudyConfig] | None = None
) -> PlannedStudy:
    """Read and expand the study; `adjust` changes it first (the command line's overrides)."""
    study = load_study(study_path)
    if adjust is not None:
        study = adjust(study)
    source_dir = layout.source_dir_for(study_path)
    plan = expand(study, source_dir)
    if not plan.runs:
        raise UserError(f"{study_path}: the study plans no runs", hint="see `llem plan`")
    return PlannedStudy(study_path, study, plan, source_dir)


@dataclass
class Preflight:
    """What a study runs with, resolved once: its plan, images, slot pools and container
    settings, the engine client, and the host locks it holds until `release`."""

    planned: PlannedStudy
    design_hash: str
    client: docker.DockerClient
    locks: HostLocks
    images: dict[str, ResolvedImage]
    user: ContainerUser
    limits: ContainerLimits
    cpu_groups: list[tuple[int, ...]] | None
    gpu_uuids: dict[int, str] = field(default_factory=dict)  # where the host's NVML named them
    hub: dict[str, FetchedItem] = field(default_factory=dict)  # hub item key -> its snapshot

    @property
    def study(self) -> StudyConfig:
        return self.planned.study

    @property
    def plan(self) -> Plan:
        return self.planned.plan

    @property
    def needs_confirmation(self) -> bool:
        return len(self.plan.runs) > self.study.execution.max_runs_without_confirmation

    def release(self) -> None:
        self.locks.release()

    @classmethod
    def check(cls, planned: PlannedStudy, options: RunOptions, say: Display) -> Preflight:
        study, plan = planned.study, planned.plan
        execution = study.execution
        user = ContainerUser.for_invoker(execution.container_user)
        run_spec.check_local_inputs(plan.runs, planned.source_dir, user)
        lock_file = lock_path_for(planned.path) if options.locked else None
        lock = load_lock(lock_file) if lock_file is not None else None
        slurm = execution.executor == "slurm"
        if slurm:
            _check_slurm(planned, say)
            cpu_groups, needed, cpus = None, [], []  # Slurm allocates them on the node
        else:
            cpu_groups, needed, cpus = _local_pools(planned)
        locks = HostLocks(needed, study.name, options.lock_dir, cpus)
        locks.acquire()
        try:
            client = connect(execution.container_engine)
            images = {
                backend: _resolve(client, study.image_for(backend), backend, lock, lock_file)
                for backend in sorted({run.config.backend for run in plan.runs})
            }
            for backend, image in images.items():
                say.note(f"image for {backend}: {image.ref} {image.id} " + _digest_text(image))
            if slurm:
                say.note(
                    "the compute nodes must hold these images by ID "
                    f"({execution.container_engine} load / pull by digest)"
                )
            if lock_file is not None:
                require_locked(lock_file, {b: image.locked() for b, image in images.items()})
                say.note(f"images match the lock {lock_file}")
            uuids: dict[int, str] = {}
            if needed:
                require_nvidia_runtime(client)
                found = gpu_uuids(needed)
                if isinstance(found, str):
                    say.note(f"GPUs granted by index, not UUID: {found}")
                else:
                    uuids = found
            hub = _resolve_hub(planned, client, user, images, say)
        except BaseException:
            locks.release()
            raise
        engine_defaults = (
            engine_process_limits()
            if ENGINES[execution.container_engine].states_nofile_nproc
            else {}
        )
        return cls(
            planned=planned,
            design_hash=design_hash(study),
            client=client,
            locks=locks,
            images=images,
            user=user,
            limits=ContainerLimits(execution.pids_limit, execution.ulimits, engine_defaults),
            cpu_groups=cpu_groups,
            gpu_uuids=uuids,
            hub=hub,
        )


def _local_pools(
    planned: PlannedStudy,
) -> tuple[list[tuple[int, ...]] | None, list[int], list[int]]:
    """This host's CPU groups, and the GPUs and CPUs the study locks; every run fits its
    pool. CPU runs lock the CPUs they are pinned to, or, unpinned, every CPU llem may use."""
    execution, runs = planned.study.execution, planned.plan.runs
    gpu_ids = execution.gpu_ids
    for run in runs:
        if run.config.gpu_count > len(gpu_ids):
            raise UserError(
                f"run {run.run_id} needs {run.config.gpu_count} GPUs but execution.gpu_ids "
                f"lists {len(gpu_ids)}",
                hint="list more GPU indices under execution.gpu_ids",
            )
    cpu_runs = any(run.config.gpu_count == 0 for run in runs)
    host_cpus = sorted(os.sched_getaffinity(0))
    cpu_groups = cpu_groups_for(execution.cpu_ids, host_cpus, execution.max_parallel, cpu_runs)
    # One run at a time takes the first GPUs of the pool; several may use all of it.
    widest = max(run.config.gpu_count for run in runs)
    needed = gpu_ids[:widest] if execution.max_parallel == 1 else list(gpu_ids)
    cpus: list[int] = []
    if cpu_runs:
        cpus = sorted({c for group in cpu_groups for c in group}) if cpu_groups else host_cpus
    return cpu_groups, (needed if widest > 0 else []), cpus


def _check_slurm(planned: PlannedStudy, say: Display) -> None:
    """The controller answers; the nodes see the output folder and the local inputs."""
    settings = planned.study.execution.slurm
    slurm_commands.ping()
    if not settings.probe_paths:
        return
    inputs = sorted(
        {
            host_path(item.value, planned.source_dir)
            for run in planned.plan.runs
            for item in run_spec.local_inputs(run.config, planned.source_dir)
        }
    )
    output_dir = layout.output_dir_for(planned.path, planned.study.output_dir)
    say.note(probe_shared_paths(settings, output_dir, inputs))


def _resolve_hub(
    planned: PlannedStudy,
    client: docker.DockerClient,
    user: ContainerUser,
    images: dict[str, ResolvedImage],
    say: Display,
) -> dict[str, FetchedItem]:
    """Every hub repository the runs name, found in a cache or (online) fetched: `hub.py`."""
    study = planned.study
    resolver = HubResolver(client, user, study.execution.pids_limit, online=not study.offline)
    found = resolver.resolve(planned.plan.runs, images, planned.source_dir)
    for fetched in found.values():
        how = "downloaded into" if fetched.downloaded else "found in"
        where = "llem's cache" if fetched.cache == "llem" else "your Hugging Face cache"
        say.note(f"{fetched.item.key}: {how} {where}, commit {fetched.commit}")
    return found


def _digest_text(image: ResolvedImage) -> str:
    return f"digest {image.digest}" if image.digest else "(no repo digest: a local build)"


def _resolve(
    client: docker.DockerClient,
    ref: str,
    backend: str,
    lock: StudyLock | None,
    lock_file: Path | None,
) -> ResolvedImage:
    """The image by ID; under --locked a missing one is named with the image the lock wants."""
    try:
        return resolve_image(client, ref, backend)
    except ImageMissing:
        wanted = lock.images.get(backend) if lock is not None else None
        if wanted is None:
            raise
        present = True
        try:
            client.images.get(wanted.image_id)
        except docker.errors.DockerException:
            present = False
        raise UserError(
            f"--locked: image {ref!r} for backend {backend!r} is not present; the lock "
            f"{lock_file} wants image {wanted.image_id}"
            + (f" ({wanted.repo_digest})" if wanted.repo_digest else " (a local build)"),
            hint=(
                f"that image is still here under another name: `docker tag {wanted.image_id} "
                f"{ref}` restores it"
                if present
                else f"load or pull that image and tag it {ref} "
                f"(`docker load`, `docker pull {wanted.repo_digest or ref}`)"
            ),
        ) from None
