"""A study file read and expanded: what `llem plan` shows and `llem run` pre-flights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.config.study import StudyConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.study.expand import Plan, expand


@dataclass(frozen=True)
class PlannedStudy:
    """A study file read and expanded, with the folder its relative paths resolve from."""

    path: Path
    study: StudyConfig
    plan: Plan
    source_dir: Path


def planned_study(study_path: Path, study: StudyConfig) -> PlannedStudy:
    """Expand a study read from (or standing in for) `study_path`; UserError when it plans
    no run."""
    source_dir = layout.source_dir_for(study_path)
    plan = expand(study, source_dir)
    if not plan.runs:
        raise UserError(f"{study_path}: the study plans no runs", hint="see `llem plan`")
    return PlannedStudy(study_path, study, plan, source_dir)
