"""The work folder shared by host and container: file names, records and atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from llenergymeasure.contract.config import Strict

CONTAINER_WORKDIR = "/llem/work"


class WorkPaths:
    """One experiment's work folder (`<study>/experiments/<run_id>/`, mounted read-write at
    /llem/work): every file name in it, once. Who writes what:

    | file                     | written by | when                                              |
    |--------------------------|------------|---------------------------------------------------|
    | config.json              | host       | before the container starts (RunRequest)          |
    | placement.json           | executor   | where it placed the run, when that is not where   |
    |                          |            | config.json was written (a cluster node)         |
    | progress.jsonl           | container  | appended events (ProgressEvent)                   |
    | result.json / error.json | container  | once, atomically, at the end (one of the two)     |
    | container.log            | host       | the container's output, streamed (head + tail)    |
    | timeseries.parquet       | container  | the power sampler's readings                      |
    | requests.parquet         | container  | serving: one row per request                      |
    | slices.parquet           | container  | serving: energy and tokens per time slice         |
    | server_metrics.parquet   | container  | serving: the server's queue and KV-cache gauges   |
    | server.log               | container  | serving: the backend server's own output          |
    | server-options.yaml      | container  | serving: options the server's command points at   |
    """

    CONFIG = "config.json"
    PLACEMENT = "placement.json"
    PROGRESS = "progress.jsonl"
    RESULT = "result.json"
    ERROR = "error.json"
    CONTAINER_LOG = "container.log"
    TIMESERIES = "timeseries.parquet"
    REQUESTS = "requests.parquet"
    SLICES = "slices.parquet"
    SERVER_METRICS = "server_metrics.parquet"
    SERVER_LOG = "server.log"
    SERVER_OPTIONS = "server-options.yaml"

    def __init__(self, root: Path) -> None:
        self.root = root

    def __truediv__(self, name: str) -> Path:
        return self.root / name


# The timeseries' columns: seconds since the experiment started, the phase, the GPU index,
# power in W, temperature in °C (and more samples; units in the names).
TIMESERIES_TIME = "t_s"
TIMESERIES_PHASE = "phase"
TIMESERIES_GPU = "gpu"
TIMESERIES_POWER = "power_w"
TIMESERIES_TEMPERATURE = "temperature_c"

TRACEBACK_CAP_BYTES = 8 * 1024


# A run id is a folder name and nothing more: no separator, no `..`, nothing but this shape.
RUN_ID_PATTERN = r"^[0-9]{4,}_[0-9a-f]{8}_c[0-9]+$"
CONFIG_HASH_PATTERN = r"^[0-9a-f]{64}$"


def run_dir_name(run_index: int, config_hash: str, cycle: int) -> str:
    """`<NNNN>_<config-hash8>_c<cycle>`: sorts in run order, names the config and the cycle."""
    return f"{run_index:04d}_{config_hash[:8]}_c{cycle}"


ProgressKind = Literal[
    "started", "model_loaded", "baseline_done", "warmup_done", "batch", "slice", "finished"
]


class ProgressEvent(Strict):
    """One line of `progress.jsonl`."""

    event: ProgressKind
    t: float = Field(default_factory=time.time, description="Unix time, s.")
    i: int | None = Field(None, description="Batch number (1-based) for 'batch' events.")
    n: int | None = Field(
        None, description="Batches in this pass ('batch'); slices in the window ('slice')."
    )
    detail: str | None = None
    figures: dict[str, float] | None = Field(
        None,
        description="'slice' events: the window so far, by metric (contract.pruning.SLICE_METRICS);"
        " `i` is the slice reached.",
    )


class ErrorReport(Strict):
    """The whole of `error.json`."""

    type: str
    message: str
    traceback: str = Field("", max_length=TRACEBACK_CAP_BYTES)

    @classmethod
    def capped(cls, type_: str, message: str, traceback: str) -> ErrorReport:
        """Keep the end of a long traceback: the frames nearest the failure matter most."""
        encoded = traceback.encode()
        if len(encoded) > TRACEBACK_CAP_BYTES:
            marker = "...[truncated]\n"
            keep = TRACEBACK_CAP_BYTES - len(marker)
            traceback = marker + encoded[-keep:].decode(errors="ignore")
        return cls(type=type_, message=message, traceback=traceback)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write via a new temporary file in the same folder, fsync it, rename it over `path`,
    fsync the folder: the one way llem writes a whole file in a folder it keeps.

    A reader sees the old file or the whole new one, never a part, even across a power cut.
    Nothing planted in the folder is written through: the temporary file has a random name and
    is created by `mkstemp` (O_CREAT | O_EXCL | O_NOFOLLOW), and the rename replaces a link of
    the name `path` instead of following it. A writer that wants a path of its own (pyarrow,
    matplotlib) writes into a buffer, and its bytes come here. `mode`: the file's mode (0600
    for what only its owner may read); default: what a plain open() would give, never writable
    by others (a study folder's reader refuses a file they may write).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode if mode is not None else 0o644 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.filename is None:  # a write or fsync (e.g. a full disk): say which file
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """`atomic_write_bytes` of `text` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the millisecond: every timestamp both halves write."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_utc(text: str) -> datetime:
    """A timestamp `utc_now` wrote (one without a zone is taken as UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def atomic_write_json(
    path: Path, data: BaseModel | dict[str, Any] | list[Any], mode: int | None = None
) -> None:
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, sort_keys=True)
    atomic_write_text(path, text + "\n", mode)


def append_jsonl(path: Path, record: BaseModel) -> None:
    """Append one line; a single write() of a short line keeps concurrent readers whole."""
    line = record.model_dump_json(exclude_none=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
