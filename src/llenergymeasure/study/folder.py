"""The study folder's format, owned by one object (`StudyPaths`): every name in it, and its
plan (plan.json), written once and read back by the rules for untrusted files."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from llenergymeasure.contract.workdir import RUN_ID_PATTERN, WorkPaths, atomic_write_text
from llenergymeasure.errors import UserError
from llenergymeasure.study.models import PlannedRun, SearchPlan
from llenergymeasure.study.untrusted import UntrustedFile, read_bytes

PLAN_CAP = 1 << 30  # 10^5 runs of full configurations fit many times over
_PLAN = TypeAdapter(list[PlannedRun] | SearchPlan)


class StudyPaths:
    """Where one `llem run` keeps everything it planned, ran and measured:

    ```
    <output_dir>/<study_id>/              study_id = <name>_<UTC YYYYmmddTHHMMSS>_<design_hash8>
      study.yaml                          the study file, verbatim (a study built in Python:
                                          as a study file says it)
      study.lock.yaml                     the images the study runs on (image_lock.py format)
      <base file name>                    the study's `base:` file, verbatim, when it has one
      plan.json                           list of PlannedRun (JSON), written atomically at start;
                                          a search: its SearchPlan (the runs: in the manifest)
      manifest.jsonl                      the journal of run states (study/manifest.py)
      .llem-writer.lock                   held by the one llem writing the manifest
      experiments/<run_id>/               one work folder per run (WorkPaths),
                                          run_id = <NNNN>_<hash8>_c<cycle>
      <executor kind>/                    what that executor keeps (a cluster executor: run
                                          lists, jobs, node records; created 0700)
      results.parquet, results.csv        one row per run, at the end (`llem results write`)
      summary.csv                         one row per configuration
      trials.csv                          a search: one row per trial, in the order asked
      report.html, plots/                 `llem results report`, `llem results plot`
    ```
    """

    STUDY = "study.yaml"
    # `<stem>.lock.yaml` of STUDY: what `llem run <study-folder>/study.yaml --locked` reads.
    STUDY_LOCK = "study.lock.yaml"
    PLAN = "plan.json"
    MANIFEST = "manifest.jsonl"
    WRITER_LOCK = ".llem-writer.lock"
    EXPERIMENTS = "experiments"
    RESULTS_PARQUET = "results.parquet"
    RESULTS_CSV = "results.csv"
    SUMMARY_CSV = "summary.csv"
    TRIALS_CSV = "trials.csv"
    REPORT = "report.html"
    PLOTS = "plots"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def work(self, run_id: str) -> Path:
        """A run's work folder; its id must be a run id (never a path that leaves the study)."""
        if not re.fullmatch(RUN_ID_PATTERN, run_id):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.root / self.EXPERIMENTS / run_id

    def work_paths(self, run_id: str) -> WorkPaths:
        return WorkPaths(self.work(run_id))

    def executor_dir(self, kind: str) -> Path:
        """What executor `kind` keeps in the study folder."""
        return self.root / kind

    def write_plan(self, plan: list[PlannedRun] | SearchPlan) -> None:
        data = (
            plan.model_dump(mode="json")
            if isinstance(plan, SearchPlan)
            else [run.model_dump(mode="json") for run in plan]
        )
        atomic_write_text(self.root / self.PLAN, json.dumps(data, indent=1) + "\n")

    def read_plan(self) -> list[PlannedRun] | SearchPlan:
        """The plan, every run validated (a run id is a folder name, nothing else): one
        UserError naming the file otherwise."""
        path = self.root / self.PLAN
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
