"""Pre-flight of `llem run`: everything checked and resolved once, before anything is written.

Order: the study planned (`api.plan_study`; the CLI shows it); local inputs present and readable by
the containers' user; with --locked, the lock file read; the executor's own pre-flight (local:
every run fits the slot pools; a cluster: the controller answers, the nodes see the paths); host
locks on the GPUs and, for CPU runs, the CPUs (before the engine and runtime checks, so a busy
GPU is named even where the NVIDIA runtime is missing); engine reachable; every image resolved
to its ID and digest; with --locked, each compared with the lock; the NVIDIA runtime when GPUs
are requested; each pool GPU's physical UUID. The confirmation above the cap is the CLI's
(`Preflight.needs_confirmation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.hub import FetchedItem
from llenergymeasure.contract.validity import short_window_note
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import executor_class
from llenergymeasure.orchestrator.machine import run_spec
from llenergymeasure.orchestrator.machine.container_user import (
    ContainerLimits,
    ContainerUser,
    engine_process_limits,
)
from llenergymeasure.orchestrator.machine.engine import (
    ENGINES,
    ImageMissing,
    ResolvedImage,
    connect,
    require_nvidia_runtime,
    resolve_image,
)
from llenergymeasure.orchestrator.machine.gpu_settings import (
    GpuControl,
    check_settings,
    host_control,
)
from llenergymeasure.orchestrator.machine.host_gpus import gpu_uuids
from llenergymeasure.orchestrator.machine.hub import HubResolver
from llenergymeasure.orchestrator.machine.image_lock import (
    StudyLock,
    load_lock,
    lock_path_for,
    require_locked,
)
from llenergymeasure.orchestrator.machine.locks import HostLocks
from llenergymeasure.orchestrator.planned import PlannedStudy
from llenergymeasure.study.expand import Plan
from llenergymeasure.study.hashing import design_hash
from llenergymeasure.study.search_space import most_runs


@dataclass
class RunOptions:
    resume: bool = False
    retry_failed: bool = False
    locked: bool = False
    mem_limit: str | None = None
    lock_dir: Path | None = None  # the host locks' folder (tests); default: locks.lock_dir()
    detach: bool = False  # an executor whose jobs outlive llem: submit every run, then return
    no_gaps: bool = False  # no gap or cool-down between runs (recorded per run)


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
    # NVML to set runs' `gpu:` settings with, where a run has them and this host runs it
    gpu_control: GpuControl | None = None
    hub: dict[str, FetchedItem] = field(default_factory=dict)  # hub item key -> its snapshot

    @property
    def study(self) -> StudyConfig:
        return self.planned.study

    @property
    def plan(self) -> Plan:
        return self.planned.plan

    @property
    def needs_confirmation(self) -> bool:
        return self.run_count > self.study.execution.max_runs_without_confirmation

    @property
    def run_count(self) -> int:
        """The runs the study plans; a search: the most it may run."""
        return most_runs(self.study, self.plan)

    def release(self) -> None:
        """The host locks given back and the engine client closed (a library caller may run
        another study in the same process)."""
        self.locks.release()
        self.client.close()

    @classmethod
    def check(cls, planned: PlannedStudy, options: RunOptions, say: Display) -> Preflight:
        study = planned.study
        execution = study.execution
        configured = "container_user" in execution.model_fields_set
        user = ContainerUser.for_invoker(execution.container_user if configured else None)
        if options.detach and planned.search is not None:
            raise UserError(
                "--detach: a search asks for each trial after the earlier ones ended, so llem "
                "must follow it",
                hint="run it without --detach (in tmux or under nohup); `--resume` continues it",
            )
        if options.retry_failed and planned.search is not None:
            raise UserError(
                "--retry-failed: a search's failed trials are findings (told to its sampler as "
                "infeasible); running them again would change what it learnt",
                hint="`--resume` alone continues the search",
            )
        run_spec.check_local_inputs(planned.reach, planned.source_dir, user)
        short = short_window_note(run.config for run in planned.reach)
        if short is not None:
            say.note(short)
        lock_file = lock_path_for(planned.path) if options.locked else None
        lock = load_lock(lock_file) if lock_file is not None else None
        needs = executor_class(execution.executor.kind).preflight(planned, say)
        locks = HostLocks(needs.gpus, study.name, options.lock_dir, needs.cpus)
        locks.acquire()
        try:
            client = connect(execution.container_engine)
            images = {
                backend: _resolve(client, study.image_for(backend), backend, lock, lock_file)
                for backend in sorted({run.config.backend for run in planned.reach})
            }
            for backend, image in images.items():
                say.note(f"image for {backend}: {image.ref} {image.id} " + _digest_text(image))
            if needs.images_note is not None:
                say.note(needs.images_note)
            if lock_file is not None:
                require_locked(lock_file, {b: image.locked() for b, image in images.items()})
                say.note(f"images match the lock {lock_file}")
            uuids: dict[int, str] = {}
            if needs.gpus:
                require_nvidia_runtime(client)
                found = gpu_uuids(needs.gpus)
                if isinstance(found, str):
                    say.note(f"GPUs granted by index, not UUID: {found}")
                else:
                    uuids = found
            hub = _resolve_hub(planned, client, user, images, say)
            gpu_control = _gpu_control(planned, needs.gpus, say)
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
            cpu_groups=needs.cpu_groups,
            gpu_uuids=uuids,
            hub=hub,
            gpu_control=gpu_control,
        )


def _gpu_control(planned: PlannedStudy, gpus: list[int], say: Display) -> GpuControl | None:
    """NVML on this host, checked against every `gpu:` setting the runs ask for (range and
    permission), where a run has one and this host sets its GPUs; a cluster's nodes do their
    own."""
    settings = [run.config.gpu for run in planned.reach if run.config.gpu.any]
    if not settings:
        return None
    if not gpus:
        say.note("gpu settings: each node sets (and puts back) its run's GPUs")
        return None
    control = host_control()
    check_settings(control, gpus, settings)
    say.note(f"gpu settings: checked on GPU(s) {gpus}; each is put back after its run")
    return control


def _resolve_hub(
    planned: PlannedStudy,
    client: docker.DockerClient,
    user: ContainerUser,
    images: dict[str, ResolvedImage],
    say: Display,
) -> dict[str, FetchedItem]:
    """Every hub repository the runs name, found in a cache or (online) fetched: `hub.py`."""
    study = planned.study
    resolver = HubResolver(
        client, user, study.execution.pids_limit, online=not study.offline, say=say.note
    )
    found = resolver.resolve(planned.reach, images, planned.source_dir)
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
