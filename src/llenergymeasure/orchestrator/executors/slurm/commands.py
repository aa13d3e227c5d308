"""Slurm's commands, run and parsed: sbatch, squeue, sacct, scancel, srun.

The parsing is pure and unit-tested on the formats Slurm prints; the calls raise
`SlurmUnreachable` when the controller does not answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llenergymeasure.errors import UserError

COMMAND_TIMEOUT_S = 60.0
# States after which a job runs no more (`squeue -t all` and `sacct` spell them so).
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "CANCELLED",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
# %F array job id, %K array task id (one line per task with -r), %T state, %N node, %j name
SQUEUE_FORMAT = "%F|%K|%T|%N|%j"
SACCT_FIELDS = "JobID,JobName,State,ExitCode,NodeList"


# The index of an array's own record, which stands for its tasks that never got one of their
# own (e.g. pending tasks cancelled together: squeue `%K` N/A, sacct JobID without `_`).
REST = -1


class SlurmUnreachable(UserError):
    """A Slurm command failed: no controller answered, or the command is not installed."""


@dataclass(frozen=True)
class TaskState:
    """One array task as Slurm reports it."""

    array_id: str
    index: int
    name: str
    state: str  # first word: "CANCELLED by 0" -> CANCELLED
    node: str | None
    exit_code: int | None = None  # sacct's ExitCode before the colon; squeue has none
    signal: int | None = None

    @property
    def job_id(self) -> str:
        return f"{self.array_id}_{self.index}" if self.index != REST else self.array_id

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_STATES


def run_command(argv: Sequence[str], what: str) -> str:
    """stdout of a Slurm command; SlurmUnreachable with its stderr when it fails."""
    if shutil.which(argv[0]) is None:
        raise SlurmUnreachable(
            f"`{argv[0]}` is not installed here: the Slurm executor needs Slurm's commands",
            hint="run llem on a login node of the cluster (or install slurm-client and point it "
            "at the controller); `bash scripts/slurm-local` starts a one-node test cluster",
        )
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(
            f"{what}: `{argv[0]}` did not answer within {COMMAND_TIMEOUT_S:.0f} s",
            hint="is slurmctld up? (`scontrol ping`)",
        ) from None
    if done.returncode != 0:
        message = " ".join(done.stderr.split())[:300] or f"exit code {done.returncode}"
        raise SlurmUnreachable(f"{what}: {message}", hint="is slurmctld up? (`scontrol ping`)")
    return done.stdout


def ping() -> None:
    """The controller answers, or SlurmUnreachable."""
    out = run_command(["scontrol", "ping"], "the Slurm controller")
    if "UP" not in out:
        raise SlurmUnreachable(
            f"the Slurm controller is down: {' '.join(out.split())}",
            hint="start slurmctld (`scontrol ping` says UP when it answers)",
        )


def submit(args: Sequence[str]) -> str:
    """sbatch --parsable ARGS; the job id (the array's)."""
    out = run_command(["sbatch", "--parsable", *args], "sbatch")
    return out.strip().split(";")[0]  # "id" or "id;cluster"


def cancel(job_ids: Iterable[str], *, signal: str | None = None) -> None:
    ids = list(job_ids)
    if not ids:
        return
    extra = [f"--signal={signal}", "--full"] if signal else []
    run_command(["scancel", *extra, *ids], "scancel")


def queue(names: Iterable[str]) -> list[TaskState]:
    """Tasks of the named jobs the controller still knows (pending, running, recently ended)."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    out = run_command(
        [
            *("squeue", "-h", "-r", "-t", "all", _own_jobs()),
            *("--name", ",".join(wanted), "-o", SQUEUE_FORMAT),
        ],
        "squeue",
    )
    return parse_squeue(out)


def accounting(array_ids: Iterable[str]) -> list[TaskState]:
    """Tasks of the given arrays from accounting (sacct), ended ones included."""
    ids = sorted(set(array_ids))
    if not ids:
        return []
    out = run_command(
        ["sacct", "-X", "-n", "-P", _own_jobs(), "-j", ",".join(ids), "--format", SACCT_FIELDS],
        "sacct",
    )
    return parse_sacct(out)


def jobs_named(names: Iterable[str]) -> list[TaskState]:
    """Every task of the named jobs: the controller's view, else accounting's (ended long ago)."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    found = {task.job_id: task for task in queue(wanted)}
    try:
        out = run_command(
            [
                "sacct",
                "-X",
                "-n",
                "-P",
                "-S",
                "2000-01-01",
                _own_jobs(),
                "--name",
                ",".join(wanted),
                "--format",
                SACCT_FIELDS,
            ],
            "sacct",
        )
    except SlurmUnreachable:
        out = ""  # no accounting storage: the controller's view is all there is
    for task in parse_sacct(out):
        found.setdefault(task.job_id, task)
    return list(found.values())


def _own_jobs() -> str:
    """Only this user's jobs: another user's job of the same name is never taken for ours."""
    return f"--user={os.geteuid()}"


def parse_squeue(text: str) -> list[TaskState]:
    """Lines of SQUEUE_FORMAT with -r (one line per array task; the array's own record, index
    REST, for tasks that ended together without one of their own)."""
    tasks = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 4 or not (parts[1].isdigit() or parts[1] == "N/A"):
            continue
        array_id, index, state, node, name = (*parts[:4], parts[4] if len(parts) > 4 else "")
        number = int(index) if index.isdigit() else REST
        tasks.append(TaskState(array_id, number, name, state.split()[0], node or None))
    return tasks


def task_indices(spec: str) -> list[int]:
    """`3` -> [3]; a range of tasks that never started, `[0-2,5%4]` -> [0, 1, 2, 5]."""
    if spec.isdigit():
        return [int(spec)]
    inner = spec.strip("[]").split("%")[0]
    indices: list[int] = []
    for part in inner.split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            indices.extend(range(int(first), int(last or first) + 1))
    return indices


def parse_sacct(text: str) -> list[TaskState]:
    """Lines of SACCT_FIELDS. Tasks that never started come as one range line (`12_[3-5%2]`),
    each of them in that line's state, or as the array's own line (`12`: index REST); a task's
    own line wins over a range's."""
    own: dict[tuple[str, int], TaskState] = {}
    ranged: dict[tuple[str, int], TaskState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5:
            continue
        job_id, name, state, exit_code, node = parts[:5]
        array_id, sep, spec = job_id.partition("_")
        if not array_id.isdigit():
            continue
        code, _, sig = exit_code.partition(":")
        for index in task_indices(spec) if sep else [REST]:
            task = TaskState(
                array_id,
                index,
                name,
                state.split()[0] if state else "UNKNOWN",
                None if node in ("", "None assigned") else node,
                int(code) if code.isdigit() else None,
                int(sig) if sig.isdigit() else None,
            )
            (own if not sep or spec.isdigit() else ranged)[(array_id, index)] = task
    return list({**ranged, **own}.values())
