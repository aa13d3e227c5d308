"""A study file read and expanded: what `llem plan` shows and `llem run` pre-flights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.config.loader import load_study
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


def plan_study(
    study_path: Path, adjust: Callable[[StudyConfig], StudyConfig] | None = None
) -> PlannedStudy:
    """Read and expand the study; `adjust` changes it first (the command line's overrides)."""
    study = load_study(study_path)
    return plan_planned(study_path, adjust(study) if adjust is not None else study)


def plan_planned(study_path: Path, study: StudyConfig) -> PlannedStudy:
    """Expand a study read from (or standing in for) `study_path`."""
    source_dir = layout.source_dir_for(study_path)
    plan = expand(study, source_dir)
    if not plan.runs:
        raise UserError(f"{study_path}: the study plans no runs", hint="see `llem plan`")
    return PlannedStudy(study_path, study, plan, source_dir)
