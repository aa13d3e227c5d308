"""A study's manifest journal read line by line, for the tests that stop llem at random instants:
what each invocation appended, which runs completed when, and the check that every planned run
completed exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.integration import study_dirs
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest

# run id -> (started_at, attempts) of a completed run: what must never change again
Completed = dict[str, tuple[str | None, int]]


def the_study_dir(folder: Path) -> Path | None:
    """The study's one folder under `folder`/out: the one with a plan (None: none yet). llem
    killed after it made a folder and before it wrote the plan leaves a folder that `--resume`
    does not continue (the next start makes a new one); it holds nothing but the study file."""
    dirs = study_dirs(folder)
    planned = [d for d in dirs if (d / StudyPaths.PLAN).is_file()]
    assert len(planned) <= 1, planned
    for left in set(dirs) - set(planned):
        assert not (left / StudyPaths.MANIFEST).exists(), left
        experiments = left / StudyPaths.EXPERIMENTS
        assert not experiments.is_dir() or not any(experiments.iterdir()), left
    return planned[0] if planned else None


def journal(study_dir: Path | None, whole: bool = False) -> list[dict[str, Any]]:
    """The journal's lines, parsed; a torn last line (llem killed mid-write) is left out, or
    with `whole` fails the test. No folder or journal yet: []."""
    path = study_dir / StudyPaths.MANIFEST if study_dir is not None else None
    if path is None or not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        assert not whole, f"the journal's last line is torn: {lines[-1][:200]!r}"
        lines = lines[:-1]
    return [json.loads(line) for line in lines]


def runs_started(lines: list[dict[str, Any]]) -> list[str]:
    """Run ids that went `running` in these lines (a container was to start)."""
    return [line["run_id"] for line in lines if _run_status(line) == "running"]


def completed(study_dir: Path | None) -> Completed:
    """The runs completed so far, with when they started and how many attempts they took."""
    if study_dir is None or not (study_dir / StudyPaths.MANIFEST).is_file():
        return {}
    runs = load_manifest(study_dir).runs.values()
    return {r.run_id: (r.started_at, r.attempts) for r in runs if r.status == "completed"}


def assert_kept(study_dir: Path, earlier: Completed) -> None:
    """A run completed in an earlier invocation was never started again."""
    now = completed(study_dir)
    for run_id, stamp in earlier.items():
        assert now.get(run_id) == stamp, f"{run_id} ran again: {stamp} -> {now.get(run_id)}"


def assert_exactly_the_plan(study_dir: Path, earlier: Completed) -> None:
    """The study completed; every planned run reached `completed` in exactly one journal line,
    and none completed before was started again; every line is whole."""
    lines = journal(study_dir, whole=True)
    record = load_manifest(study_dir)
    planned = sorted(run.run_id for run in StudyPaths(study_dir).read_plan())
    assert sorted(record.runs) == planned
    assert record.status == "completed", record.status
    for run_id in planned:
        ends = [line for line in lines if _run_status(line) == "completed" and _id(line) == run_id]
        assert len(ends) == 1, f"{run_id} completed {len(ends)} times"
    assert all(run.status == "completed" for run in record.runs.values())
    assert_kept(study_dir, earlier)


def _run_status(line: dict[str, Any]) -> str | None:
    return line.get("status") if line.get("kind") == "run" else None


def _id(line: dict[str, Any]) -> str | None:
    return line.get("run_id")
