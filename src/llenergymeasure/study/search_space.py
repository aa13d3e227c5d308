"""A search's space over its cells: the configuration of a suggestion, the runs a search made.

A cell is one configuration of the study's own grid (its `sweep:`, its `experiments:`); the
search runs within each cell: the space's keys set over the cell's configuration. A key scoped
to a backend (`vllm.max_num_seqs`) belongs to the cells of that backend only.

Everything here is a pure function of the plan and the manifest's records, so `--resume`, `llem
status` and `llem results` rebuild the same runs from the study folder alone. The records are
read as untrusted input: a trial whose parameters are not a point of the space (a key it does
not have, a value it does not list, a number outside its range or off its step), or whose
parameters do not make the configuration it records, is refused naming the trial, never
rebuilt into a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llenergymeasure.config.merge import set_path
from llenergymeasure.config.messages import display, problem, walk_loc
from llenergymeasure.config.search import Dimension, Range, SearchConfig
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.config import BACKENDS, ExperimentConfig
from llenergymeasure.contract.workdir import run_dir_name
from llenergymeasure.errors import UserError
from llenergymeasure.study.expand import Plan, combination_fields, finish_data, serving_problem
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.hashing import data_hash
from llenergymeasure.study.manifest_models import SearchRecord, StudyRecord, TrialRecord
from llenergymeasure.study.model_fit import fit_problem
from llenergymeasure.study.models import PlannedRun, SearchCellPlan, SearchPlan


@dataclass(frozen=True)
class SpaceKey:
    key: str  # as written in search.space, dotted
    path: tuple[str, ...]
    dimension: Dimension

    def probes(self) -> list[Any]:
        """The values that stand for the dimension at planning: every choice, a range's ends."""
        if isinstance(self.dimension, Range):
            return list(dict.fromkeys(self.dimension.ends()))
        return list(self.dimension)

    def contains(self, value: Any) -> bool:
        """Whether `value` is a point the sampler may suggest: one of the listed values (and of
        its type: 1 is not 1.0 nor True), or a number within the range, an integer of an
        integer range, on the step of a stepped one (Optuna's own tolerance)."""
        dimension = self.dimension
        if not isinstance(dimension, Range):
            return any(type(value) is type(choice) and value == choice for choice in dimension)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not (math.isfinite(value) and dimension.low <= value <= dimension.high):
            return False
        if dimension.integer:
            step = int(dimension.step or 1)
            return isinstance(value, int) and (value - int(dimension.low)) % step == 0
        if dimension.step is None:
            return True
        steps = (value - dimension.low) / dimension.step
        return abs(steps - round(steps)) < 1e-8

    def described(self) -> str:
        dimension = self.dimension
        if not isinstance(dimension, Range):
            return f"one of {list(dimension)!r}"
        step = f" step {dimension.step}" if dimension.step is not None else ""
        kind = "integers" if dimension.integer else "numbers"
        return f"{kind} {dimension.low}..{dimension.high}{step}"


@dataclass(frozen=True)
class TrialConfig:
    """A suggestion made into a configuration, or the reason the contract rejects it."""

    config: ExperimentConfig | None
    config_hash: str | None
    rejected: str | None


@dataclass(frozen=True)
class Cell:
    plan: SearchCellPlan
    keys: tuple[SpaceKey, ...]  # the space's keys that apply to this cell's backend

    @property
    def index(self) -> int:
        return self.plan.index

    def params_problem(self, params: dict[str, Any]) -> str | None:
        """Why `params` is not a point of this cell's space (every key, each value in it, as
        the sampler suggests them); None when it is one."""
        names = {key.key for key in self.keys}
        extra = next((name for name in params if name not in names), None)
        if extra is not None:
            return f"{extra!r} is not a key of cell {self.index}'s search space"
        for key in self.keys:
            if key.key not in params:
                return f"it gives no value for {key.key}"
            if not key.contains(params[key.key]):
                value = params[key.key]
                return f"{key.key}={value!r} is outside the search space ({key.described()})"
        return None

    def swept(self, params: dict[str, Any]) -> dict[str, Any]:
        """The run's table columns: the cell's own swept values, then the searched ones."""
        return {**self.plan.swept, **params}

    def configure(self, params: dict[str, Any], inputs_dir: Path | None = None) -> TrialConfig:
        """The configuration of `params` set over the cell's; a combination the contract (or a
        local model's context, or the backend's lack of a server) rejects has its reason."""
        data = self.plan.config.model_dump(mode="json")
        for key in self.keys:
            if key.key in params:
                data = set_path(data, key.path, params[key.key])
        try:
            config = ExperimentConfig.model_validate(finish_data(data))
        except ValidationError as error:
            return TrialConfig(None, None, rejection(error))
        reason = serving_problem(config) or fit_problem(config, inputs_dir)
        if reason is not None:
            return TrialConfig(None, None, reason)
        return TrialConfig(config, data_hash(config.model_dump(mode="json")), None)


def rejection(error: ValidationError) -> str:
    """The contract's reasons, `path: problem; ...`."""
    reasons = []
    for detail in error.errors():
        path, holder = walk_loc(ExperimentConfig, detail["loc"])
        where = display("", path)
        text = problem(detail, holder)
        reasons.append(f"{where}: {text}" if where else text)
    return "; ".join(reasons)


def space_keys(search: SearchConfig) -> list[SpaceKey]:
    return [
        SpaceKey(key, tuple(key.split(".")), dimension) for key, dimension in search.space.items()
    ]


def cells_of(search_plan: SearchPlan) -> list[Cell]:
    keys = space_keys(search_plan.search)
    return [Cell(cell, _keys_for(cell.config.backend, keys)) for cell in search_plan.cells]


def _keys_for(backend: str, keys: list[SpaceKey]) -> tuple[SpaceKey, ...]:
    return tuple(k for k in keys if k.path[0] not in BACKENDS or k.path[0] == backend)


def most_runs(study: StudyConfig, plan: Plan) -> int:
    """The runs a study plans; a search: the most it may run (every cell's trials and
    confirmation runs)."""
    if study.search is None:
        return plan.n_runs
    return plan.n_configs * study.search.runs_per_cell


def search_plan_of(study_search: SearchConfig, plan: Plan, where: Any) -> SearchPlan:
    """The search's plan over the grid's configurations (its cells). Every value of the space
    is tried alone on each cell it applies to: a value the contract refuses whatever else is
    chosen (a type, a bound) is a mistake in the file, UserError at its line via `where(path)`;
    a value that only some combinations break is the search's to learn."""
    search_plan = SearchPlan(
        search=study_search,
        cells=[
            SearchCellPlan(
                index=planned.config_index,
                config_hash=planned.config_hash,
                swept=planned.swept,
                config=planned.config,
            )
            for planned in plan.configs
        ],
    )
    cells = cells_of(search_plan)
    for key in space_keys(study_search):
        applies = [cell for cell in cells if key in cell.keys]
        if not applies:
            path = f"search.space.{key.key}"
            backends = sorted({cell.plan.config.backend for cell in cells})
            raise UserError(
                f"{where(path)}: {path}: scoped to backend '{key.path[0]}', but no "
                f"configuration of the study uses it (backends: {', '.join(backends)})",
                hint=f"remove it, or set (or sweep) backend to include {key.path[0]}",
            )
        for value in key.probes():
            _probe(applies, key, value, where)
    return search_plan


def _probe(cells: list[Cell], key: SpaceKey, value: Any, where: Any) -> None:
    for cell in cells:
        data = set_path(cell.plan.config.model_dump(mode="json"), key.path, value)
        try:
            ExperimentConfig.model_validate(finish_data(data))
        except ValidationError as error:
            details = [d for d in error.errors() if combination_fields(d) is None]
            if details:
                path = f"search.space.{key.key}"
                _, holder = walk_loc(ExperimentConfig, details[0]["loc"])
                raise UserError(
                    f"{where(path)}: {path}: value {value!r}: {problem(details[0], holder)}"
                ) from None


def probe_runs(search_plan: SearchPlan) -> list[PlannedRun]:
    """Runs standing for every configuration the search may make (each cell with each probe
    value alone), for what the pre-flight checks once: images, local files, hub models."""
    runs: list[PlannedRun] = []
    for cell in cells_of(search_plan):
        params_list: list[dict[str, Any]] = [{}]
        params_list += [{key.key: value} for key in cell.keys for value in key.probes()]
        for params in params_list:
            made = cell.configure(params)
            if made.config is None or made.config_hash is None:
                continue
            runs.append(_planned(cell, params, made, len(runs), 0, cell.index))
    return runs


def _planned(
    cell: Cell, params: dict[str, Any], made: TrialConfig, run_index: int, cycle: int, index: int
) -> PlannedRun:
    assert made.config is not None and made.config_hash is not None
    return PlannedRun.model_construct(
        run_index=run_index,
        run_id=run_dir_name(run_index, made.config_hash, cycle),
        config_hash=made.config_hash,
        config_index=index,
        cycle=cycle,
        swept=cell.swept(params),
        config=made.config,
    )


class SearchRuns:
    """The runs a search has made so far, rebuilt from the manifest's records and grown as it
    asks: each its configuration, its config index (distinct configurations in order of their
    first run) and its run id."""

    def __init__(self, search_plan: SearchPlan, inputs_dir: Path | None = None) -> None:
        self.cells = cells_of(search_plan)
        self.inputs_dir = inputs_dir
        self.runs: list[PlannedRun] = []
        self.by_id: dict[str, PlannedRun] = {}
        self.config_index: dict[str, int] = {}

    def add(
        self, cell: int, params: dict[str, Any], run_index: int, cycle: int
    ) -> PlannedRun | None:
        """The run of `params` in `cell` at `run_index`; None when the contract now rejects a
        recorded suggestion (the plan changed under the study folder)."""
        made = self.cells[cell].configure(params, self.inputs_dir)
        if made.config_hash is None:
            return None
        index = self.config_index.setdefault(made.config_hash, len(self.config_index))
        run = _planned(self.cells[cell], params, made, run_index, cycle, index)
        self.runs.append(run)
        self.by_id[run.run_id] = run
        return run

    @classmethod
    def rebuilt(
        cls, search_plan: SearchPlan, record: SearchRecord | None, inputs_dir: Path | None = None
    ) -> SearchRuns:
        """Every run the records name, in run-index order; a record whose configuration no
        longer hashes as recorded is a UserError (the study folder's plan was changed)."""
        runs = cls(search_plan)  # recorded runs are not judged again against local files
        if record is None:
            runs.inputs_dir = inputs_dir
            return runs
        _check_record(record, runs.cells)
        made: list[tuple[int, int, dict[str, Any], int, str, str, str]] = []
        for trial in record.trials:
            if trial.run_index is not None and not trial.reused and trial.run_id is not None:
                label = f"trial {trial.cell}.{trial.number} (run {trial.run_id})"
                hash_ = trial.config_hash or ""
                made.append(
                    (trial.run_index, trial.cell, trial.params, 0, trial.run_id, hash_, label)
                )
        for c in record.confirms:
            label = f"confirmation run {c.run_id}"
            made.append((c.run_index, c.cell, c.params, c.cycle, c.run_id, c.config_hash, label))
        for position, (run_index, cell, params, cycle, run_id, hash_, label) in enumerate(
            sorted(made, key=lambda item: item[0])
        ):
            if run_index != position:  # the runs were made as 0, 1, 2...
                raise _changed(f"{label}: recorded at run index {run_index}, not {position}")
            run = runs.add(cell, params, run_index, cycle)
            if run is None or run.run_id != run_id or run.config_hash != hash_:
                raise _changed(
                    f"{label}: its recorded parameters {params} do not make the configuration "
                    "it records"
                )
        for trial in record.trials:  # a reused run is one made above, of the same configuration
            if not trial.reused:
                continue
            earlier = runs.by_id.get(trial.run_id or "")
            config_hash = runs.cells[trial.cell].configure(trial.params).config_hash
            if earlier is None or not trial.config_hash == config_hash == earlier.config_hash:
                label = f"trial {trial.cell}.{trial.number} (reusing run {trial.run_id})"
                raise _changed(
                    f"{label}: its recorded parameters {trial.params} do not make the "
                    "configuration of the run it reuses"
                )
        runs.inputs_dir = inputs_dir
        return runs


def _changed(problem: str) -> UserError:
    return UserError(
        f"{problem} (the study folder's manifest.jsonl or plan.json was changed)",
        hint="restore them, or start the search again",
    )


def _check_record(record: SearchRecord, cells: list[Cell]) -> None:
    """The manifest's search lines fit the plan: known cells, each cell's trials numbered 0, 1,
    2... in order, each a point of its cell's space that was rejected or names its run (the
    journal is read as untrusted input; a line that does not fit is named)."""
    numbers = [0] * len(cells)
    problem = None
    for trial in record.trials:
        if trial.cell >= len(cells):
            problem = f"trial {trial.number} names cell {trial.cell}"
        elif trial.number != numbers[trial.cell]:
            problem = f"cell {trial.cell}'s trial {trial.number} is out of order"
        else:
            numbers[trial.cell] += 1
            found = _trial_problem(cells[trial.cell], trial)
            if found is None:
                continue
            problem = f"trial {trial.cell}.{trial.number}: {found}"
        break
    for confirm in record.confirms:
        if problem is not None:
            break
        if confirm.cell >= len(cells):
            problem = f"a confirmation run names cell {confirm.cell}"
        elif (found := cells[confirm.cell].params_problem(confirm.params)) is not None:
            problem = f"confirmation run {confirm.run_id}: {found}"
    problem = problem or next(
        (f"a stop names cell {cell}" for cell in record.stopped if cell >= len(cells)), None
    )
    if problem is not None:
        raise UserError(
            f"the manifest's search lines do not fit the plan's {len(cells)} cell(s): {problem}",
            hint="restore the study folder's manifest.jsonl and plan.json, or start again",
        )


def _trial_problem(cell: Cell, trial: TrialRecord) -> str | None:
    if trial.rejected is not None:
        if trial.run_id is not None or trial.config_hash is not None or trial.reused:
            return "it was rejected, yet names a run"
    elif trial.run_id is None or trial.config_hash is None:
        return "it names neither its run nor a rejection"
    elif not trial.reused and trial.run_index is None:
        return "it names a run it neither made nor reused"
    return cell.params_problem(trial.params)


def study_runs(study_dir: Path, record: StudyRecord) -> tuple[list[PlannedRun], SearchPlan | None]:
    """Every run a study folder planned (a grid's plan.json, or the runs a search recorded),
    and a search's plan, under the budget in effect (the manifest's latest change, if any);
    plan.json is read once."""
    plan = StudyPaths(study_dir).read_plan()
    if isinstance(plan, SearchPlan):
        if record.search is not None and record.search.budgets:
            search = plan.search.with_budget(record.search.budget(plan.search.budget))
            plan = plan.model_copy(update={"search": search})
        return SearchRuns.rebuilt(plan, record.search).runs, plan
    return plan, None
