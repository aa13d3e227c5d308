"""Containers left behind by a llem process that died (kill -9, power cut): found by label."""

from __future__ import annotations

import os

import docker
import docker.errors

from llenergymeasure.orchestrator.machine.container import OWNER_HOST_LABEL, OWNER_PID_LABEL


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_orphans(client: docker.DockerClient) -> int:
    """Kill and remove this host's llem containers whose owner pid is dead; returns how many."""
    host = os.uname().nodename
    removed = 0
    for container in client.containers.list(all=True, filters={"label": OWNER_PID_LABEL}):
        labels = container.labels or {}
        if labels.get(OWNER_HOST_LABEL, host) != host:
            continue
        try:
            owner = int(labels[OWNER_PID_LABEL])
        except (KeyError, ValueError):
            continue
        if pid_alive(owner):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            continue
    return removed
