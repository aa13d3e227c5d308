"""The names in a study folder, for the host modules that write it and those that read it,
and its plan (plan.json), written once and read back by the rules for untrusted files."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from llenergymeasure.contract.workdir import atomic_write_text
from llenergymeasure.errors import UserError
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.untrusted import UntrustedFile, read_bytes

STUDY_FILE = "study.yaml"  # the study file as given
# `<stem>.lock.yaml` of STUDY_FILE: what `llem run <study-folder>/study.yaml --locked` reads.
STUDY_LOCK_FILE = "study.lock.yaml"
PLAN_FILE = "plan.json"  # every planned run with its full configuration
EXPERIMENTS_DIR = "experiments"  # one work folder per run under it
PLAN_CAP = 1 << 30  # 10^5 runs of full configurations fit many times over
_PLAN = TypeAdapter(list[PlannedRun])


def write_plan(study_dir: Path, runs: list[PlannedRun]) -> None:
    atomic_write_text(
        study_dir / PLAN_FILE,
        json.dumps([run.model_dump(mode="json") for run in runs], indent=1) + "\n",
    )


def load_plan(study_dir: Path) -> list[PlannedRun]:
    """The study folder's plan, every run validated (a run id is a folder name, nothing else):
    one UserError naming the file otherwise."""
    path = study_dir / PLAN_FILE
    try:
        return _PLAN.validate_json(read_bytes(path, PLAN_CAP))
    except (OSError, UntrustedFile) as error:
        raise UserError(f"{path}: cannot be read ({error})") from None
    except ValidationError as error:
        raise UserError(
            f"{path}: not a plan llem wrote: {first_error(error)}",
            hint="restore the study folder's plan.json, or start the study again",
        ) from None


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error, `dotted.path: message`."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
