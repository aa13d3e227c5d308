"""A batch: planned runs submitted together as one Slurm job array.

Its tag (`b0001`, `b0002`, ...) names everything it leaves behind, so a later llem finds it from
the study folder alone: the job name `llem.<study id>.<tag>`, the run list
`<study>/slurm/<tag>.runs` (line k: the run id of array task k, written before sbatch), and each
task's output `<study>/slurm/<tag>_<k>.out`. The `slurm/` folder is the submitter's alone
(0700); its run lists are 0600, read back only as such (a node runs nothing else).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.config.executors import SlurmSettings
from llenergymeasure.contract.workdir import RUN_ID_PATTERN, atomic_write_text
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.untrusted import UntrustedFile, own_folder, read_bytes

NODES_DIR = "nodes"
JOB_NAME_PREFIX = "llem."
# Slurm's time limit is llem's own timeout plus this (and the gap, and a cool-down's longest
# wait), so llem's timeout always fires first and Slurm's only catches a node-side llem gone.
TIME_LIMIT_MARGIN_S = 600.0


def slurm_dir(study_dir: Path) -> Path:
    return StudyPaths(study_dir).executor_dir("slurm")


def private_slurm_dir(study_dir: Path) -> Path:
    """The study's Slurm folder, created 0700 if missing; refused unless it is this user's."""
    return own_folder(slurm_dir(study_dir), hint="the study folder must be yours")


def job_name(study_id: str, tag: str) -> str:
    return f"{JOB_NAME_PREFIX}{study_id}.{tag}"


@dataclass(frozen=True)
class Batch:
    study_dir: Path
    study_id: str
    tag: str
    run_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return job_name(self.study_id, self.tag)

    @property
    def runs_file(self) -> Path:
        return slurm_dir(self.study_dir) / f"{self.tag}.runs"

    def output_file(self, index: int) -> Path:
        return slurm_dir(self.study_dir) / f"{self.tag}_{index}.out"

    def write(self) -> None:
        text = "".join(f"{run_id}\n" for run_id in self.run_ids)
        atomic_write_text(self.runs_file, text, mode=0o600)


def new_batch(study_dir: Path, study_id: str, run_ids: list[str]) -> Batch:
    """The next batch of the study folder (tags count up, never reused)."""
    folder = private_slurm_dir(study_dir)
    taken = [int(path.stem[1:]) for path in folder.glob("b*.runs") if path.stem[1:].isdigit()]
    return Batch(study_dir, study_id, f"b{max(taken, default=0) + 1:04d}", tuple(run_ids))


def existing_batches(study_dir: Path, study_id: str) -> list[Batch]:
    """The study folder's batches, oldest first."""
    batches = []
    for path in sorted(slurm_dir(study_dir).glob("b*.runs")):
        try:
            runs = tuple(read_bytes(path, 64 << 20, owner=os.geteuid(), private=True).split())
        except (OSError, UntrustedFile):
            continue  # not a run list of ours: no job of ours has that name
        ids = tuple(run.decode() for run in runs)
        if all(re.fullmatch(RUN_ID_PATTERN, run) for run in ids):
            batches.append(Batch(study_dir, study_id, path.stem, ids))
    return batches


def time_limit_min(settings: SlurmSettings, longest_run_s: float) -> int:
    """sbatch --time in minutes: the configured one, else the longest run's need + margin."""
    if settings.time_limit_min is not None:
        return settings.time_limit_min
    return math.ceil((longest_run_s + TIME_LIMIT_MARGIN_S) / 60.0)


def node_command(settings: SlurmSettings) -> list[str]:
    """How a compute node starts llem: configured, else this very Python (a shared venv)."""
    return list(settings.llem_command or [sys.executable, "-m", "llenergymeasure"])


def where_args(settings: SlurmSettings) -> list[str]:
    """--partition, --account, --qos where set: where the study's jobs (and the probe) go."""
    pairs = (
        ("--partition", settings.partition),
        ("--account", settings.account),
        ("--qos", settings.qos),
    )
    return [f"{flag}={value}" for flag, value in pairs if value]


def sbatch_args(batch: Batch, settings: SlurmSettings, gpu_count: int, minutes: int) -> list[str]:
    """sbatch's arguments for `batch` (after --parsable): an array of one task per run, whose
    task runs `llem node-run` for its line of the run list."""
    last = len(batch.run_ids) - 1
    array = f"0-{last}" + (
        f"%{settings.max_concurrent_jobs}" if settings.max_concurrent_jobs else ""
    )
    # sbatch expands `%` in --output (filename patterns): a `%` of the path must be `%%`.
    folder = str(slurm_dir(batch.study_dir)).replace("%", "%%")
    args = [
        f"--job-name={batch.name}",
        f"--array={array}",
        f"--output={folder}/{batch.tag}_%a.out",
        f"--time={minutes}",
        # Slurm never resubmits on its own: llem does, counting attempts (max_attempts).
        "--no-requeue",
    ]
    args += where_args(settings)
    if settings.exclusive:
        args.append("--exclusive")
    if gpu_count > 0:
        args.append(f"--gres={settings.gres}:{gpu_count}")
    args += settings.extra_args
    command = [*node_command(settings), "node-run", settings.kind, str(batch.study_dir)]
    command.append(str(batch.runs_file))
    args.append(f"--wrap=exec {shlex.join(command)}")
    return args
