"""Where the experiment ran: host, container, GPUs, driver and library versions."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from llenergymeasure.backends.base import BackendAdapter
from llenergymeasure.contract.result import Environment
from llenergymeasure.energy.gpus import MeteredGpus
from llenergymeasure.version import __version__


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def container_id() -> str | None:
    """Docker sets a container's hostname to its short id; outside a container there is none."""
    return socket.gethostname() if Path("/.dockerenv").exists() else None


def environment(backend: BackendAdapter, metered: MeteredGpus | None) -> Environment:
    engine, engine_version = backend.engine()
    versions = backend.runtime_versions()
    gpus = metered.static_info() if metered is not None else []
    return Environment(
        llem_version=__version__,
        python_version=platform.python_version(),
        os=platform.platform(),
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count() or 0,
        hostname=socket.gethostname(),
        container_id=container_id(),
        gpus=gpus,
        driver_version=metered.driver_version() if metered is not None else None,
        cuda_version=versions.get("cuda"),
        torch_version=versions.get("torch"),
        transformers_version=versions.get("transformers"),
        backend_engine=engine,
        backend_engine_version=engine_version,
        backend_engine_arguments=backend.engine_arguments(),
        device=backend.device(),
    )
