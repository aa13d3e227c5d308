"""Before a study is submitted: do the compute nodes see what the study needs at the same path?

One short job (`srun`, one task, one minute, not exclusive) on the study's partition checks a
token file in the output folder and every local input, and the Python that starts llem there.
What a node cannot see is named in one message. A cluster with no node free within
PROBE_WAIT_S cannot be probed now: the study goes on with that said.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from llenergymeasure.config.executors import SlurmSettings
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.executors.slurm.batches import node_command, where_args

PROBE_WAIT_S = 60
CHECK_EACH = 'for p do [ -e "$p" ] || echo "$p"; done'


def probe_args(settings: SlurmSettings, paths: list[str]) -> list[str]:
    args = ["srun", "--quiet", f"--immediate={PROBE_WAIT_S}", "--nodes=1", "--ntasks=1"]
    args += ["--time=1", "--job-name=llem.probe", *where_args(settings)]
    return [*args, "sh", "-c", CHECK_EACH, "llem-probe", *paths]


def probe_shared_paths(settings: SlurmSettings, output_dir: Path, inputs: list[Path]) -> str:
    """UserError naming what a node cannot see; else what was checked (for the display)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    token = output_dir / f".llem-probe-{uuid.uuid4().hex[:12]}"
    token.touch()
    starter = node_command(settings)[0]
    paths = [str(token), *(str(p) for p in inputs)]
    if starter.startswith("/"):
        paths.append(starter)
    try:
        done = subprocess.run(
            probe_args(settings, paths),
            capture_output=True,
            text=True,
            timeout=PROBE_WAIT_S + 60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"shared paths not probed: no node answered within {PROBE_WAIT_S + 60} s"
    finally:
        token.unlink(missing_ok=True)
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[:200] or f"srun exit code {done.returncode}"
        return f"shared paths not probed ({reason})"
    missing = [line for line in done.stdout.splitlines() if line.strip()]
    if not missing:
        return f"a compute node sees the output folder and {len(paths) - 1} other path(s)"
    named = ["the output folder " + str(output_dir) if m == str(token) else m for m in missing]
    raise UserError(
        "a compute node does not see, at the same path: " + "; ".join(named),
        hint="put the output folder (output_dir), model folders, prompt files and llem's "
        "virtual environment on a filesystem the nodes share, or set "
        "execution.slurm.llem_command to how a node starts llem",
    )
