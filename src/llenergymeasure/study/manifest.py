"""The study manifest: an append-only JSONL journal, fsync'd on every transition.

`manifest.jsonl` in the study folder holds one JSON object per line:

- `{"kind": "study", ...}`: the study's header (StudyRecord without its runs), written first;
  later `study` lines carry a new status;
- `{"kind": "run", ...}`: the whole RunRecord of one run after a transition. The newest line
  for a run_id wins;
- a search's lines, in the order they happened: `{"kind": "trial", ...}` (a TrialRecord: what
  the sampler asked), `{"kind": "confirm", ...}` (a confirmation run), `{"kind":
  "search_stop", "cell": i, "reason": ...}` (a cell's search stopped asking).

A transition appends one bounded line to an open file and fsyncs it: O(1) whatever the size
of the study. A `kill -9` (or a power cut) can leave at most a torn last line; loading ignores
it, and opening the journal for writing truncates it so the next line starts clean.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest_models import (
    ConfirmRecord,
    RunRecord,
    SearchRecord,
    StudyRecord,
    StudyStatus,
    TrialRecord,
)


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


SEARCH_KINDS = ("trial", "confirm", "search_stop")


def _add_search_line(search: SearchRecord, kind: str, entry: dict[str, Any]) -> None:
    if kind == "trial":
        search.trials.append(TrialRecord.model_validate(entry))
    elif kind == "confirm":
        search.confirms.append(ConfirmRecord.model_validate(entry))
    else:
        search.stopped[int(entry["cell"])] = str(entry["reason"])


def load_manifest(study_dir: Path) -> StudyRecord:
    """Read a study's manifest (read-only; safe while a study is writing it)."""
    path = manifest_path(study_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no manifest here; is this a study folder?") from None
    record, _ = _parse(text)
    return record


class Manifest:
    """The writable journal of one study. Holds the replayed state in memory."""

    def __init__(self, path: Path, record: StudyRecord) -> None:
        self.path = path
        self.record = record
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @classmethod
    def create(cls, study_dir: Path, record: StudyRecord) -> Manifest:
        """Start a journal with the study header and every run of `record` as it stands."""
        path = manifest_path(study_dir)
        if path.exists():
            raise FileExistsError(f"{path} exists; open it instead")
        manifest = cls(path, StudyRecord.model_validate({**_header(record), "runs": {}}))
        manifest._append({"kind": "study", **_header(record)})
        manifest.add_runs(list(record.runs.values()))
        _fsync_dir(path.parent)
        return manifest

    @classmethod
    def open(cls, study_dir: Path) -> Manifest:
        """Replay an existing journal, cutting a torn last line so appends start clean."""
        path = manifest_path(study_dir)
        data = path.read_bytes()
        record, good_bytes = _parse(data.decode("utf-8", errors="replace"))
        if good_bytes < len(data):
            with open(path, "r+b") as handle:
                handle.truncate(good_bytes)
                handle.flush()
                os.fsync(handle.fileno())
        return cls(path, record)

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

    def stop_search(self, cell: int, reason: str) -> None:
        self._search().stopped[cell] = reason
        self._append({"kind": "search_stop", "cell": cell, "reason": reason})

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
        written = os.write(self._fd, line)
        while written < len(line):
            written += os.write(self._fd, line[written:])
        os.fsync(self._fd)


def _header(record: StudyRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"runs", "search"})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
