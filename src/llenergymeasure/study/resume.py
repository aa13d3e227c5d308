"""What a resumed study folder's plan must agree with: the study file it is resumed from.

`llem run --resume` runs what the folder's `plan.json` says, a file on disk (perhaps shared
storage) that names every configuration a container is built from. Before a resumed study runs
anything, its plan is checked against the plan the study file makes now:
- a grid: every run of plan.json is a run of the study file: its configuration, all of it (not
  its hash alone), is the study file's configuration of that index, with the same hash and the
  same swept values; run indices are positions 0, 1, 2...; no configuration and cycle twice; and
  every configuration of the study file is there. The order and the number of cycles may differ:
  `execution:` is not part of the design, and a resume keeps the order its folder recorded;
- a search: its search and its cells are the study file's, exactly, but for the search's
  budget (`SearchBudget`), which a resume may change: the manifest records each change.

A search's trials, the manifest's part, are checked wherever a search is rebuilt
(`search_space.SearchRuns.rebuilt`): inside the space, and making the configuration they record.
"""

from __future__ import annotations

from typing import Any

from llenergymeasure.study.models import PlannedRun, SearchPlan

RecordedPlan = list[PlannedRun] | SearchPlan
_ABSENT = object()


def plan_difference(recorded: RecordedPlan, expected: RecordedPlan) -> str | None:
    """The first way `recorded` (plan.json) is not a plan of the study file (`expected`, its
    plan now), in words; None when it is one."""
    if isinstance(recorded, SearchPlan) != isinstance(expected, SearchPlan):
        kinds = (
            ("a search", "a grid") if isinstance(recorded, SearchPlan) else ("a grid", "a search")
        )
        return f"it plans {kinds[0]}, the study file {kinds[1]}"
    if isinstance(recorded, SearchPlan):
        assert isinstance(expected, SearchPlan)
        return _search_difference(recorded, expected)
    assert not isinstance(expected, SearchPlan)
    return _grid_difference(recorded, expected)


def _grid_difference(recorded: list[PlannedRun], expected: list[PlannedRun]) -> str | None:
    configs = {run.config_index: run for run in expected}
    seen: set[tuple[int, int]] = set()
    for position, run in enumerate(recorded):
        where = f"run {run.run_id}"
        if run.run_index != position:
            return f"{where} has index {run.run_index} at position {position}"
        if (run.config_index, run.cycle) in seen:
            return f"{where}: configuration {run.config_index} cycle {run.cycle} is planned twice"
        seen.add((run.config_index, run.cycle))
        planned = configs.get(run.config_index)
        if planned is None:
            return (
                f"{where}: configuration {run.config_index} is not one of the study file's "
                f"{len(configs)}"
            )
        difference = first_difference(
            run.config.model_dump(mode="json"), planned.config.model_dump(mode="json")
        )
        if difference is not None:
            return f"{where}: its configuration differs from the study file's at {difference}"
        if run.config_hash != planned.config_hash:
            return f"{where}: config_hash {run.config_hash[:8]} is not its configuration's"
        difference = first_difference(run.swept, planned.swept)
        if difference is not None:
            return f"{where}: its swept values differ from the study file's at {difference}"
    missing = sorted(set(configs) - {index for index, _ in seen})
    if missing:
        return f"configuration {missing[0]} of the study file is not in it"
    return None


def _search_difference(recorded: SearchPlan, expected: SearchPlan) -> str | None:
    difference = first_difference(_design(recorded), _design(expected))
    return (
        None if difference is None else f"its search differs from the study file's at {difference}"
    )


def _design(plan: SearchPlan) -> dict[str, Any]:
    return {**plan.model_dump(mode="json"), "search": plan.search.design_dump()}


def first_difference(ours: Any, theirs: Any, path: str = "") -> str | None:
    """Where two JSON values first differ, `dotted.path: A in plan.json, B from the study
    file`; None when they are equal."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in list(ours) + [key for key in theirs if key not in ours]:
            inner = f"{path}.{key}" if path else str(key)
            if key not in ours or key not in theirs:
                return _shown(inner, ours.get(key, _ABSENT), theirs.get(key, _ABSENT))
            found = first_difference(ours[key], theirs[key], inner)
            if found is not None:
                return found
        return None
    if isinstance(ours, list) and isinstance(theirs, list):
        for index, (a, b) in enumerate(zip(ours, theirs, strict=False)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
        if len(ours) != len(theirs):
            return _shown(f"{path} (length)", len(ours), len(theirs))
        return None
    if type(ours) is not type(theirs) or ours != theirs:
        return _shown(path or "(the whole)", ours, theirs)
    return None


def _shown(path: str, ours: Any, theirs: Any) -> str:
    def short(value: Any) -> str:
        text = "absent" if value is _ABSENT else repr(value)
        return text if len(text) <= 80 else text[:77] + "..."

    return f"{path}: {short(ours)} in plan.json, {short(theirs)} from the study file"
