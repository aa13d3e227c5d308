"""A study file read and expanded: what `llem plan` shows and `llem run` pre-flights."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from llenergymeasure.config.study import StudyConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.results.metrics import BY_COLUMN
from llenergymeasure.study.expand import MAX_RUNS, Plan, expand
from llenergymeasure.study.models import PlannedRun, SearchPlan
from llenergymeasure.study.sampler_choice import check_sampler
from llenergymeasure.study.search_space import most_runs, probe_runs, search_plan_of


@dataclass(frozen=True)
class PlannedStudy:
    """A study file read and expanded, with the folder its relative paths resolve from. A
    search's plan holds its cells (the grid's configurations); its runs come as it asks."""

    path: Path
    study: StudyConfig
    plan: Plan
    source_dir: Path
    search: SearchPlan | None = None

    @cached_property
    def reach(self) -> list[PlannedRun]:
        """Runs standing for every configuration the study may run: what the pre-flight checks
        (images, local inputs, hub models). A grid: its runs; a search: each cell with each
        searched value alone."""
        return probe_runs(self.search) if self.search is not None else self.plan.runs


def planned_study(study_path: Path, study: StudyConfig) -> PlannedStudy:
    """Expand a study read from (or standing in for) `study_path`; UserError when it plans
    no run."""
    source_dir = layout.source_dir_for(study_path)
    plan = expand(study, source_dir)
    if not plan.runs:
        raise UserError(f"{study_path}: the study plans no runs", hint="see `llem plan`")
    search = search_of(study, plan) if study.search is not None else None
    return PlannedStudy(study_path, study, plan, source_dir, search)


def search_of(study: StudyConfig, plan: Plan) -> SearchPlan:
    """The search's plan over the study's cells: its metrics are the result catalogue's columns,
    its trials run once; anything else is a UserError at its line."""
    assert study.search is not None
    source = study.source_map

    def where(path: str) -> str:
        return source.where(path) if source is not None else "study"

    unknown = next((name for name in study.search.metrics if name not in BY_COLUMN), None)
    if unknown is not None:
        raise UserError(
            f"{where('search')}: search: unknown metric {unknown!r}",
            hint=f"metrics are the result catalogue's columns: {', '.join(sorted(BY_COLUMN))}",
        )
    if study.execution.n_cycles > 1:
        raise UserError(
            f"{where('execution.n_cycles')}: execution.n_cycles: a search runs each trial once; "
            "its best configurations run again in its race (search.confirm)",
            hint="remove n_cycles (or --cycles) from a search",
        )
    search = study.search
    most = most_runs(study, plan)
    if most > MAX_RUNS:
        raise UserError(
            f"{where('search.trials')}: search.trials: {plan.n_configs:,} cells x "
            f"{search.runs_per_cell:,} runs may run {most:,}, above the {MAX_RUNS:,} a "
            "study may hold",
            hint="sweep fewer values, or give the search fewer trials",
        )
    check_sampler(search, where)
    return search_plan_of(search, plan, where)
