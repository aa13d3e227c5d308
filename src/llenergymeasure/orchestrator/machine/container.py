"""One container's whole life: create, start, stream logs, watch, kill, inspect, remove.

The container is always removed, also when `start` fails half-way (the engine keeps a Created
container after an APIError such as a missing GPU driver). docker-py's `wait(timeout=...)`
raises requests' ConnectionError rather than a timeout, so waiting happens in a thread without
a timeout and the watch loop enforces the deadlines itself. An engine that goes away surfaces
as requests' ConnectionError (an OSError, not a DockerException): caught alike.

The container's output goes to container.log (`container_log`): after the container exits,
its removal waits until the engine delivered all of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import DeviceRequest, Mount, Ulimit

from llenergymeasure.contract.workdir import CONTAINER_WORKDIR, WorkPaths
from llenergymeasure.orchestrator.machine.container_log import (
    ENGINE_ERRORS,
    ENGINE_LOG,
    ContainerLog,
    one_line,
)
from llenergymeasure.orchestrator.machine.pids import PidsWatch
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.study.untrusted import UntrustedFile, create_new, irregular, regular_size
from llenergymeasure.study.work_files import ProgressTail

GRACE_S = 2.0
# A container's own limits (an experiment's RunContext.deadline_s, a fetch's stall and
# deadline) are the host's plus this: the host's kill comes first (its watch checks every
# 50 ms, from just before the container starts), so the outcome is the host's; the container
# ends itself only where no host is left to (llem killed -9).
DEADLINE_MARGIN_S = 30.0
POLL_S = 0.05
OWNER_PID_LABEL = "llem.owner_pid"
OWNER_HOST_LABEL = "llem.owner_host"
STUDY_LABEL = "llem.study"
RUN_LABEL = "llem.run"


def owner_labels() -> dict[str, str]:
    """Which llem started a container (this process, this host): what orphan cleanup reads."""
    return {OWNER_PID_LABEL: str(os.getpid()), OWNER_HOST_LABEL: os.uname().nodename}


@dataclass
class ContainerSpec:
    image_id: str
    name: str
    labels: dict[str, str]
    workdir: Path
    user: str  # uid:gid, never 0 (container_user)
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)  # host path -> bind, mode
    environment: dict[str, str] = field(default_factory=dict)
    gpu_devices: list[str] = field(default_factory=list)  # GPU UUIDs (or host indices)
    cpuset: str | None = None  # host CPUs the container may use ("0,1"); None: all
    network_none: bool = False
    shm_size: str | None = None
    mem_limit: str | None = None
    pids_limit: int | None = None
    ulimits: dict[str, int] = field(default_factory=dict)  # name -> soft = hard; -1 unlimited
    command: list[str] | None = None
    entrypoint: list[str] | None = None

    def create_kwargs(self) -> dict[str, Any]:
        binds = {str(self.workdir): {"bind": CONTAINER_WORKDIR, "mode": "rw"}, **self.mounts}
        kwargs: dict[str, Any] = {
            "name": self.name,
            "labels": self.labels,
            "user": self.user,
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,size=1g"},
            "ipc_mode": "private",
            # Mount objects, not "host:inside:mode" strings: a `:` in a host path stays a `:`.
            "mounts": [
                Mount(bind["bind"], host, type="bind", read_only=bind["mode"] == "ro")
                for host, bind in binds.items()
            ],
            "log_config": ENGINE_LOG,
            # The uid may have no passwd entry in the image: USER/LOGNAME answer getpass.
            "environment": {"HOME": "/tmp", "USER": "llem", "LOGNAME": "llem", **self.environment},
            "ulimits": [Ulimit(name=n, soft=v, hard=v) for n, v in sorted(self.ulimits.items())],
            "working_dir": CONTAINER_WORKDIR,
            "detach": True,
        }
        if self.gpu_devices:
            kwargs["device_requests"] = [
                DeviceRequest(device_ids=list(self.gpu_devices), capabilities=[["gpu"]])
            ]
        if self.cpuset is not None:
            kwargs["cpuset_cpus"] = self.cpuset
        if self.network_none:
            kwargs["network_mode"] = "none"
        if self.pids_limit is not None:
            kwargs["pids_limit"] = self.pids_limit
        if self.shm_size:
            kwargs["shm_size"] = self.shm_size
        if self.mem_limit:
            # Swap equal to the limit: no swap, so going past it is an OOM kill, not a slowdown.
            kwargs["mem_limit"] = self.mem_limit
            kwargs["memswap_limit"] = self.mem_limit
        if self.command is not None:
            kwargs["command"] = self.command
        if self.entrypoint is not None:
            kwargs["entrypoint"] = self.entrypoint
        return kwargs


class KillReason(str, Enum):
    """Why the host killed a container."""

    TIMEOUT = "timeout"
    STALL = "stall"
    INTERRUPT = "interrupt"
    UNTRUSTED = "untrusted"  # it broke the work folder's contract (ContainerExit.problem)


@dataclass
class ContainerExit:
    container_id: str | None
    exit_code: int | None
    oom_killed: bool
    killed_for: KillReason | None
    started_at: float
    finished_at: float
    engine_error: str | None = None  # the engine failed us (create/start refused, daemon gone)
    forks_refused: int | None = None  # at the pids limit; None: the cgroup was not readable
    problem: str | None = None  # how it broke the work folder's contract (UNTRUSTED)


def run_container(
    client: docker.DockerClient,
    spec: ContainerSpec,
    timeout_s: float | None,
    stall_timeout_s: float | None,
    stop: StopState,
) -> ContainerExit:
    """Create, start and watch one container until it ends (or is killed), then remove it.
    Blocks; `stop` (its first request SIGTERMs, its second SIGKILLs) may be set from another
    thread."""
    started = time.time()
    container = None
    try:
        log = ContainerLog(create_new(spec.workdir / WorkPaths.CONTAINER_LOG))
    except (UntrustedFile, OSError) as error:
        return ContainerExit(None, None, False, None, started, time.time(), engine_error=str(error))
    try:
        try:
            container = client.containers.create(spec.image_id, **spec.create_kwargs())
            container.start()
        except (docker.errors.DockerException, OSError) as error:
            return ContainerExit(
                container.id if container else None,
                None,
                False,
                None,
                started,
                time.time(),
                engine_error=one_line(error),
            )
        return _watch(container, spec, timeout_s, stall_timeout_s, stop, started, log)
    finally:
        log.close()  # the descriptor, unless its writer owns it (the writer closes its own)
        _remove(client, container, spec.name)


def _watch(
    container: Any,
    spec: ContainerSpec,
    timeout_s: float | None,
    stall_timeout_s: float | None,
    stop: StopState,
    started: float,
    log: ContainerLog,
) -> ContainerExit:
    log.follow(container)
    waited: dict[str, Any] = {}
    done = threading.Event()

    def _wait() -> None:
        try:
            waited["status"] = container.wait()
        except ENGINE_ERRORS as error:  # the engine went away: reported as an engine error
            waited["error"] = one_line(error)
        done.set()

    threading.Thread(target=_wait, daemon=True).start()
    progress = spec.workdir / WorkPaths.PROGRESS
    tail = ProgressTail(progress)
    pids = PidsWatch(container.id)
    last_size: int | None = None
    last_progress = started
    problem: str | None = None
    killed_for: KillReason | None = None
    sigterm_at: float | None = None  # an interrupt's SIGTERM, whose grace ends in a SIGKILL
    sigkilled = False
    while not done.wait(POLL_S):
        now = time.time()
        # A stall is no new event (not merely new bytes); a progress file that is not plain,
        # or that breaks its line or size cap, ends the run at once.
        size = regular_size(progress)
        if size is None:
            problem = problem or irregular(progress)
        elif size != last_size or tail.behind:
            last_size = size
            if tail.read_new():
                last_progress = now
            problem = problem or tail.problem
        pids.poll()
        if stop.immediate and not sigkilled:
            killed_for, sigkilled = killed_for or KillReason.INTERRUPT, True
            _kill(container, signal.SIGKILL)
        elif stop.requested and killed_for is None:
            killed_for, sigterm_at = KillReason.INTERRUPT, now
            _kill(container, signal.SIGTERM)
        elif sigterm_at is not None and not sigkilled and now - sigterm_at > GRACE_S:
            sigkilled = True
            _kill(container, signal.SIGKILL)
        elif killed_for is None and problem is not None:
            killed_for, sigkilled = KillReason.UNTRUSTED, True
            _kill(container, signal.SIGKILL)
        elif killed_for is None and _past(now - started, timeout_s):
            killed_for, sigkilled = KillReason.TIMEOUT, True
            _kill(container, signal.SIGKILL)
        elif killed_for is None and _past(now - last_progress, stall_timeout_s):
            killed_for, sigkilled = KillReason.STALL, True
            _kill(container, signal.SIGKILL)
    finished = time.time()
    pids.poll()
    if "error" in waited:  # the container may still run: its stream would not end
        log.cut(f"the engine stopped answering ({waited['error']})")
        return ContainerExit(
            container.id,
            None,
            False,
            killed_for,
            started,
            finished,
            waited["error"],
            problem=problem,
        )
    log.drain(stop)  # before the removal: the engine delivers the end of the output first
    exit_code = int(waited["status"].get("StatusCode", -1))
    try:
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
    except (docker.errors.DockerException, OSError):
        oom = False
    return ContainerExit(
        container.id,
        exit_code,
        oom,
        killed_for,
        started,
        finished,
        forks_refused=pids.refused,
        problem=problem,
    )


def _past(elapsed: float, limit: float | None) -> bool:
    return limit is not None and elapsed > limit


def _kill(container: Any, sig: signal.Signals) -> None:
    # Engine gone: the wait thread sees it. (requests' errors are OSErrors, not DockerExceptions.)
    with contextlib.suppress(docker.errors.DockerException, OSError):
        container.kill(signal=int(sig))


def _remove(client: docker.DockerClient, container: Any, name: str) -> None:
    try:
        if container is not None:
            container.remove(force=True)
        else:
            # create may have left a container behind before failing: find it by its name.
            client.api.remove_container(name, force=True)
    except docker.errors.NotFound:
        pass
    except (docker.errors.DockerException, OSError):
        pass  # engine unreachable: orphan cleanup removes it on the next run
