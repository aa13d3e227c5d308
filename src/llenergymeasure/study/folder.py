"""The study folder's format, owned by one object (`StudyPaths`): every name in it, its plan
(plan.json), written once, and the rules it is kept by.

A study folder is llem's own, as untrusted as a work folder once it is on disk (a shared
project space, a cluster filesystem), so:
- it is created 0700 whatever the umask (an explicit chmod after mkdir: a default ACL of the
  output folder cannot widen it), as are its `experiments/`, `plots/` and executor folders; a
  work folder inside is reached through it only. Private rather than 0750: what a study leaves
  is its owner's to share (`chmod -R g+rX`, which llem accepts: it refuses write by others, not
  read), and a group member is never given a way in by default. A group project space (umask
  002) would otherwise make every study folder writable by the whole group;
- llem reads and writes only a study folder of the caller's own that no one else may write,
  nor its `experiments/` (`trusted_study_dir`; `--resume` skips any other);
- every file in it is read by the rules of `study.untrusted`: not through a link, a regular
  file of one link, owned by this user and writable by no one else, within its cap (`read_own`);
- every whole file is written by `contract.workdir.atomic_write_bytes` (a new file of a random
  name renamed over the old: nothing planted there is written through); the manifest, the one
  file appended to, by `study.manifest` (created O_EXCL, opened without following a link).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from llenergymeasure.config.source import MAX_FILE_BYTES
from llenergymeasure.contract.workdir import RUN_ID_PATTERN, WorkPaths, atomic_write_text
from llenergymeasure.errors import UserError
from llenergymeasure.study.models import PlannedRun, SearchPlan
from llenergymeasure.study.untrusted import UntrustedFile, folder_problem, own_folder, read_bytes

PLAN_CAP = 1 << 30  # 10^5 runs of full configurations fit many times over
_PLAN = TypeAdapter(list[PlannedRun] | SearchPlan)


class StudyPaths:
    """Where one `llem run` keeps everything it planned, ran and measured:

    ```
    <output_dir>/<study_id>/              study_id = <name>_<UTC YYYYmmddTHHMMSS>_<design_hash8>;
                                          0700, as are experiments/, plots/, <executor kind>/
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

    Files are read back with `read_own` (their caps: `PLAN_CAP`, `MAX_FILE_BYTES` for the study
    file, `manifest.MANIFEST_CAP`, `image_lock.LOCK_CAP`) and written whole with
    `atomic_write_*`.
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

    def own_folder(self, name: str) -> Path:
        """A folder llem keeps in the study folder (`plots/`), made 0700 if missing, refused
        when it is a link, another user's or writable by others."""
        return own_folder(self.root / name, hint=f"remove {self.root / name}; llem makes it again")

    def read_study_file(self) -> str | None:
        """The study folder's `study.yaml` (None: it has none), read by `read_own`: a link in
        its place is refused, never followed (to a file its reader may read and others not)."""
        path = self.root / self.STUDY
        try:
            return read_own(path, MAX_FILE_BYTES).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except UntrustedFile as error:
            raise UserError(
                f"{path}: {error.problem}; llem reads only a study file it wrote",
                hint="remove it (the study file you ran is the original), or start the study again",
            ) from None

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
            return _PLAN.validate_json(read_own(path, PLAN_CAP))
        except (OSError, UntrustedFile) as error:
            raise UserError(f"{path}: cannot be read ({error})") from None
        except ValidationError as error:
            raise UserError(
                f"{path}: not a plan llem wrote: {first_error(error)}",
                hint="restore the study folder's plan.json, or start the study again",
            ) from None


def read_own(path: Path, cap: int) -> bytes:
    """A file of a study folder, whole: not through a link, a regular file of one link, this
    user's and writable by no one else, at most `cap` bytes. FileNotFoundError, UntrustedFile."""
    return read_bytes(path, cap, owner=os.geteuid(), sole_writer=True)


def study_folder_problem(folder: Path, *, follow: bool = True) -> str | None:
    """Why llem will not read or write `folder` as a study folder ("<folder> belongs to uid
    1001, not to you (uid 1000)"): it, or its `experiments/`, is not a folder of this user's
    that no one else may write. None when it is fit. `follow`: `folder` may be a link the user
    named (what it points to is judged); a name found in a folder is never followed."""
    experiments = folder / StudyPaths.EXPERIMENTS
    for path, follow_it in ((folder, follow), (experiments, False)):
        if path is experiments and not os.path.lexists(path):
            continue
        problem = folder_problem(path, follow=follow_it)
        if problem is not None:
            return f"{path} {problem}"
    return None


def trusted_study_dir(folder: Path) -> Path:
    """`folder`, if llem may read and write it as a study folder (`study_folder_problem`);
    else one UserError naming the problem and the fix. What `llem status`, `llem results`, the
    library's `load_results`, `llem run --resume` and a cluster node check before anything in
    it is read: a folder others may write may hold anything they planted."""
    folder = Path(folder)
    problem = study_folder_problem(folder)
    if problem is None:
        return folder
    try:
        yours = os.stat(folder).st_uid == os.geteuid()
    except OSError:
        yours = False
    copy = (
        f"copy it into a folder of your own: cp -r {folder} DEST && chmod -R go-w "
        f"DEST/{folder.name}, and give llem the copy"
    )
    raise UserError(
        f"{problem}: llem reads and writes only a study folder of your own that no one else "
        "may write",
        hint=f"if no one else wrote in it: chmod -R go-w {folder}; else {copy}" if yours else copy,
    )


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error, `dotted.path: message`."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
