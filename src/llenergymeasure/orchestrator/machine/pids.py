"""How often the kernel refused a container a new process or thread at its pids limit.

The container's pids cgroup counts every refusal in `pids.events` ("max N"). Its folder depends
on the cgroup version and the engine's cgroup driver; the first that exists is read. The cgroup
goes with the container, so the count is polled while it runs and the highest seen is kept.
Unreadable (a rootless engine, another layout): None, and the log is the only witness.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_FOLDERS = (
    "/sys/fs/cgroup/pids/docker/{id}",  # v1, cgroupfs driver
    "/sys/fs/cgroup/pids/system.slice/docker-{id}.scope",  # v1, systemd driver
    "/sys/fs/cgroup/system.slice/docker-{id}.scope",  # v2, systemd driver
    "/sys/fs/cgroup/docker/{id}",  # v2, cgroupfs driver
)
# What a refused fork or thread says in a log, in C, Python and the JVM-less runtimes we run.
REFUSAL_SIGNS = ("Resource temporarily unavailable", "can't start new thread")


class PidsWatch:
    """Polls one container's `pids.events`; `refused` is the highest count seen."""

    def __init__(self, container_id: str) -> None:
        folders = (Path(folder.format(id=container_id)) for folder in CGROUP_FOLDERS)
        self.folder: Path | None = next((f for f in folders if (f / "pids.events").is_file()), None)
        self.events = self.folder / "pids.events" if self.folder is not None else None
        self.refused: int | None = 0 if self.events is not None else None

    def tasks(self) -> int | None:
        """Processes + threads in the container now; None when unreadable."""
        try:
            return int((self.folder / "pids.current").read_text()) if self.folder else None
        except (OSError, ValueError):
            return None

    def poll(self) -> None:
        if self.events is None:
            return
        try:
            text = self.events.read_text()
        except OSError:
            return  # the container is gone; the last count stands
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit():
                self.refused = max(self.refused or 0, int(value))


def limit_reason(pids_limit: int | None, refused: int | None, log_tail: str) -> str | None:
    """Why a crash is the process limit's doing, or None when nothing says so."""
    if pids_limit is None:
        return None
    if refused:
        return (
            f"the kernel refused it {refused} new processes or threads at its process limit "
            f"(execution.pids_limit = {pids_limit})"
        )
    sign = next((s for s in REFUSAL_SIGNS if s in log_tail), None)
    if refused is None and sign is not None:
        return (
            f"its log shows process or thread creation refused ({sign!r}): likely its process "
            f"limit (execution.pids_limit = {pids_limit})"
        )
    return None
