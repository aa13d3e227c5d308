"""The study manifest: an append-only JSONL journal, fsync'd on every transition.

`manifest.jsonl` in the study folder holds one JSON object per line:

- `{"kind": "study", ...}`: the study's header (StudyRecord without its runs), written first;
  later `study` lines carry a new status;
- `{"kind": "run", ...}`: the whole RunRecord of one run after a transition. The newest line
  for a run_id wins;
- a search's lines, in the order they happened: `{"kind": "trial", ...}` (a TrialRecord: what
  the sampler asked), `{"kind": "confirm", ...}` (a fresh run of a configuration already run:
  a race's, or a new incumbent's re-measurement), `{"kind": "race", ...}` (where a round of a
  cell's race left it: a RaceRecord), `{"kind": "search_stop", "cell": i, "reason": ...}` (a
  cell's search stopped asking), `{"kind": "budget", ...}` (a resume changed the search's
  budget: a BudgetRecord; the cells it reopens are no longer stopped), `{"kind": "warm", ...}`
  (an earlier search's trial told before the first ask: a WarmRecord), `{"kind": "slices",
  ...}` (what an offline trial's pruner was told, and whether it stopped the trial: a
  SliceRecord).

A transition appends one bounded line to an open file and fsyncs it: O(1) whatever the size
of the study. A `kill -9` (or a power cut) can leave at most a torn last line; loading ignores
it, and opening the journal for writing truncates it so the next line starts clean.

The journal is a file of the study folder (`study.folder`): created with O_EXCL | O_NOFOLLOW
(a name planted first, a dangling link included, is refused, never written through), opened
for appending without following a link, and read, for loading or appending, only as a regular
file of this user's that no one else may write, up to MANIFEST_CAP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llenergymeasure.errors import UserError
from llenergymeasure.study.folder import StudyPaths, read_own
from llenergymeasure.study.manifest_models import (
    BudgetRecord,
    ConfirmRecord,
    RaceRecord,
    RunRecord,
    SearchRecord,
    SliceRecord,
    StudyRecord,
    StudyStatus,
    TrialRecord,
    WarmRecord,
)
from llenergymeasure.study.untrusted import UntrustedFile, create_new, open_checked

# 10^5 runs, a line per transition, a few KiB each (a log tail) fit, with room.
MANIFEST_CAP = 4 << 30


def manifest_path(study_dir: Path) -> Path:
    return Path(study_dir) / StudyPaths.MANIFEST


def _parse(text: str) -> tuple[StudyRecord, int]:
    """Replay the journal; returns the record and the byte length of its whole lines."""
    header: dict[str, Any] | None = None
    runs: dict[str, dict[str, Any]] = {}
    search: SearchRecord | None = None
    good_bytes = 0
    position = 0
    for line in text.splitlines(keepends=True):
        position += len(line.encode("utf-8"))
        if not line.endswith("\n"):
            break  # torn last line: the write that would have finished it never happened
        try:
            entry = json.loads(line)
        except ValueError:
            break
        kind = entry.pop("kind", None)
        if kind == "study":
            header = {**(header or {}), **entry}
        elif kind == "run":
            runs[entry["run_id"]] = entry
        elif kind in SEARCH_KINDS:
            search = search or SearchRecord()
            _add_search_line(search, kind, entry)
        good_bytes = position
    if header is None:
        raise ValueError("the manifest has no study header line")
    record = StudyRecord.model_validate({**header, "runs": {}})
    record.runs = {run_id: RunRecord.model_validate(raw) for run_id, raw in runs.items()}
    record.search = search
    return record, good_bytes


SEARCH_KINDS = ("trial", "confirm", "race", "search_stop", "budget", "warm", "slices")


def _add_search_line(search: SearchRecord, kind: str, entry: dict[str, Any]) -> None:
    if kind == "trial":
        search.trials.append(TrialRecord.model_validate(entry))
    elif kind == "confirm":
        search.confirms.append(ConfirmRecord.model_validate(entry))
    elif kind == "race":
        search.races.append(RaceRecord.model_validate(entry))
    elif kind == "budget":
        _change_budget(search, BudgetRecord.model_validate(entry))
    elif kind == "warm":
        search.warm.append(WarmRecord.model_validate(entry))
    elif kind == "slices":
        record = SliceRecord.model_validate(entry)
        search.slices[record.run_id] = record
    else:
        search.stopped[int(entry["cell"])] = str(entry["reason"])


def _change_budget(search: SearchRecord, change: BudgetRecord) -> None:
    search.budgets.append(change)
    for cell in change.reopened:
        search.stopped.pop(cell, None)


def load_manifest(study_dir: Path) -> StudyRecord:
    """Read a study's manifest (read-only; safe while a study is writing it)."""
    path = manifest_path(study_dir)
    try:
        data = read_own(path, MANIFEST_CAP)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no manifest here; is this a study folder?") from None
    except UntrustedFile as error:
        raise _refused(path, error) from None
    record, _ = _parse(data.decode("utf-8", errors="replace"))
    return record


def _refused(path: Path, error: UntrustedFile) -> UserError:
    return UserError(
        f"{path}: {error.problem}; llem reads only a manifest it wrote",
        hint="start the study again, in a folder of your own",
    )


class Manifest:
    """The writable journal of one study. Holds the replayed state in memory."""

    def __init__(self, path: Path, record: StudyRecord, fd: int) -> None:
        self.path = path
        self.record = record
        self._fd = fd  # opened for appending, by `create` or `open`

    @classmethod
    def create(cls, study_dir: Path, record: StudyRecord) -> Manifest:
        """Start a journal with the study header and every run of `record` as it stands."""
        path = manifest_path(study_dir)
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists; open it instead")
        try:
            fd = create_new(path, 0o644, os.O_APPEND)
        except UntrustedFile as error:  # planted between the look and the creation
            raise _refused(path, error) from None
        manifest = cls(path, StudyRecord.model_validate({**_header(record), "runs": {}}), fd)
        manifest._append({"kind": "study", **_header(record)})
        manifest.add_runs(list(record.runs.values()))
        _fsync_dir(path.parent)
        return manifest

    @classmethod
    def open(cls, study_dir: Path) -> Manifest:
        """Replay an existing journal, cutting a torn last line so appends start clean."""
        path = manifest_path(study_dir)
        try:
            fd, info = open_checked(
                path, os.O_RDWR | os.O_APPEND, owner=os.geteuid(), sole_writer=True
            )
        except UntrustedFile as error:
            raise _refused(path, error) from None
        try:
            if info.st_size > MANIFEST_CAP:
                too_big = f"is {info.st_size} bytes, above its {MANIFEST_CAP} bytes cap"
                raise _refused(path, UntrustedFile(path, too_big))
            data = _read_all(fd, info.st_size)
            record, good_bytes = _parse(data.decode("utf-8", errors="replace"))
            if good_bytes < len(data):
                os.ftruncate(fd, good_bytes)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, record, fd)

    def add_runs(self, runs: list[RunRecord]) -> None:
        for run in runs:
            self.record.runs[run.run_id] = run
            self._append({"kind": "run", **run.model_dump(mode="json")})

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Apply one transition to a run and make it durable before returning."""
        current = self.record.runs[run_id]
        updated = RunRecord.model_validate({**current.model_dump(), **changes})
        self._append({"kind": "run", **updated.model_dump(mode="json")})
        self.record.runs[run_id] = updated
        return updated

    def add_trial(self, trial: TrialRecord) -> None:
        self._search().trials.append(trial)
        self._append({"kind": "trial", **trial.model_dump(mode="json")})

    def add_confirm(self, confirm: ConfirmRecord) -> None:
        self._search().confirms.append(confirm)
        self._append({"kind": "confirm", **confirm.model_dump(mode="json")})

    def add_race(self, race: RaceRecord) -> None:
        self._search().races.append(race)
        self._append({"kind": "race", **race.model_dump(mode="json")})

    def stop_search(self, cell: int, reason: str) -> None:
        self._search().stopped[cell] = reason
        self._append({"kind": "search_stop", "cell": cell, "reason": reason})

    def add_warm(self, warm: list[WarmRecord]) -> None:
        for record in warm:
            self._search().warm.append(record)
            self._append({"kind": "warm", **record.model_dump(mode="json")})

    def add_slices(self, record: SliceRecord) -> None:
        self._search().slices[record.run_id] = record
        self._append({"kind": "slices", **record.model_dump(mode="json")})

    def change_budget(self, change: BudgetRecord) -> None:
        _change_budget(self._search(), change)
        self._append({"kind": "budget", **change.model_dump(mode="json")})

    def _search(self) -> SearchRecord:
        if self.record.search is None:
            self.record.search = SearchRecord()
        return self.record.search

    def set_status(self, status: StudyStatus) -> None:
        self._append({"kind": "study", "status": status})
        self.record.status = status

    def set_executor(self, kind: str) -> None:
        """The executor this invocation runs the study on (`llem status` asks it to collect)."""
        if self.record.executor != kind:
            self._append({"kind": "study", "executor": kind})
            self.record.executor = kind

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        # One write() of the whole line with O_APPEND, then fsync: the line is durable or,
        # after a crash, at worst torn at the end of the file where loading ignores it.
        try:
            written = os.write(self._fd, line)
            while written < len(line):
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        except OSError as error:  # e.g. a full disk: the one message names the journal
            raise OSError(error.errno, error.strerror, str(self.path)) from error


def _header(record: StudyRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"runs", "search"})


def _read_all(fd: int, size: int) -> bytes:
    """The journal through the descriptor it is appended to (what was checked is what is read)."""
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
