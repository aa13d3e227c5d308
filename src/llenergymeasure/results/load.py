"""Read a study folder: its plan, manifest, study file and each run's result or error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import ERROR_FILE, RESULT_FILE, TIMESERIES_FILE, ErrorReport
from llenergymeasure.errors import UserError
from llenergymeasure.study.folder import EXPERIMENTS_DIR, PLAN_FILE, STUDY_FILE
from llenergymeasure.study.manifest import MANIFEST_FILE, load_manifest
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.models import PlannedRun

_PLAN = TypeAdapter(list[PlannedRun])


@dataclass(frozen=True)
class RunData:
    """One planned run with what it left behind."""

    planned: PlannedRun
    record: RunRecord | None
    result: ExperimentResult | None
    error: str | None
    work_dir: Path

    @property
    def outcome(self) -> str:
        """The manifest's outcome, or the run's status while it has none."""
        if self.record is None:
            return "pending"
        if self.record.outcome == "completed" and self.result is None:
            return "failed"  # result.json missing or no longer valid
        if self.record.outcome is not None:
            return self.record.outcome
        return self.record.status

    @property
    def timeseries_path(self) -> Path | None:
        path = self.work_dir / TIMESERIES_FILE
        return path if path.is_file() else None


@dataclass(frozen=True)
class StudyData:
    study_dir: Path
    manifest: StudyRecord
    runs: list[RunData]
    study_file: str | None

    @property
    def completed(self) -> list[RunData]:
        return [run for run in self.runs if run.result is not None]

    @property
    def has_serving(self) -> bool:
        """Whether any planned run is a serving run (mode: serving)."""
        return any(run.planned.config.mode == "serving" for run in self.runs)

    @property
    def swept_keys(self) -> list[str]:
        """Swept dimensions in the order the plan first names them."""
        keys: dict[str, None] = {}
        for run in self.runs:
            keys.update(dict.fromkeys(run.planned.swept))
        return list(keys)


def load_study_results(study_dir: Path) -> StudyData:
    """Load everything a study folder holds; a folder that is not a study is a UserError."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise UserError(f"{study_dir}: no such folder", hint="pass the folder of a study run")
    plan_path = study_dir / PLAN_FILE
    if not (plan_path.is_file() and (study_dir / MANIFEST_FILE).is_file()):
        raise UserError(
            f"{study_dir} is not a study folder (it has no {PLAN_FILE} and {MANIFEST_FILE})",
            hint="pass <output_dir>/<study_id>, the folder `llem run` created",
        )
    try:
        plan = _PLAN.validate_json(plan_path.read_bytes())
    except ValidationError as error:
        raise UserError(f"{plan_path}: not a valid plan: {_first_error(error)}") from None
    try:
        manifest = load_manifest(study_dir)
    except (ValueError, ValidationError) as error:
        raise UserError(f"{study_dir / MANIFEST_FILE}: unreadable manifest: {error}") from None
    study_path = study_dir / STUDY_FILE
    study_file = study_path.read_text(encoding="utf-8") if study_path.is_file() else None
    runs = [_load_run(study_dir, planned, manifest.runs.get(planned.run_id)) for planned in plan]
    return StudyData(study_dir=study_dir, manifest=manifest, runs=runs, study_file=study_file)


def require_results(study: StudyData) -> None:
    """Commands that report figures need at least one completed run."""
    if not study.completed:
        counts: dict[str, int] = {}
        for run in study.runs:
            counts[run.outcome] = counts.get(run.outcome, 0) + 1
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        raise UserError(
            f"{study.study_dir}: no results yet ({states or 'no runs planned'})",
            hint="wait for a run to complete, or `llem run --resume` the study",
        )


def _load_run(study_dir: Path, planned: PlannedRun, record: RunRecord | None) -> RunData:
    work_dir = study_dir / EXPERIMENTS_DIR / planned.run_id
    result_path = work_dir / RESULT_FILE
    if record is not None and record.result_path:
        result_path = study_dir / record.result_path
    result: ExperimentResult | None = None
    error = record.error if record is not None else None
    if result_path.is_file():
        try:
            result = ExperimentResult.model_validate_json(result_path.read_bytes())
        except ValidationError as invalid:
            error = f"{result_path.name} fails the result schema: {_first_error(invalid)}"
    if result is None and error is None:
        error = _error_report(work_dir / ERROR_FILE)
    return RunData(planned=planned, record=record, result=result, error=error, work_dir=work_dir)


def _error_report(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        report = ErrorReport.model_validate_json(path.read_bytes())
    except (ValidationError, json.JSONDecodeError):
        return f"{path.name} is unreadable"
    return f"{report.type}: {report.message}"


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
