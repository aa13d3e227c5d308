"""`expand(study)`: the study's grid as validated configurations and ordered runs.

How a study becomes configurations:
1. defaults = the base file, with the study file's top-level experiment keys merged over it;
2. the grid: the `sweep:` over the defaults, the Cartesian product of its dimensions in file
   order, the last varying fastest (no sweep and no list: the defaults alone, once). A
   dimension whose first part is a backend name (`vllm.max_num_seqs`) only multiplies the
   configurations of that backend; `backend` itself may be swept (a top-level `backend:` list
   is that dimension, put there by the loader);
3. then each `experiments:` entry once, deep-merged over the defaults: the grid's sweep does
   not apply to it (LLenergyMeasure's meaning). An entry may carry a `sweep:` of its own, which
   multiplies that entry alone; a key the entry sets may not also be swept by it;
4. each configuration keeps only its own backend's section, so defaults may hold one section
   per backend of a mixed study;
5. each configuration is validated once. A cross-field rule it breaks (`CombinationError`) that
   a swept value takes part in, or a misfit to a local model's context (`model_fit`), skips it
   with its reason; a rule broken by values the file wrote outright, and any other failure, is
   a mistake in the document: UserError with file:line. If all are skipped, UserError.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from llenergymeasure.config.merge import deep_merge, flatten_sweep, get_path, leaf_paths, set_path
from llenergymeasure.config.messages import display, problem, walk_loc
from llenergymeasure.config.source import SourceMap
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import BACKENDS, CombinationError, ExperimentConfig
from llenergymeasure.contract.prompt_lengths import FixedLength
from llenergymeasure.contract.prompt_sources import SyntheticPrompts
from llenergymeasure.contract.workdir import run_dir_name
from llenergymeasure.errors import UserError
from llenergymeasure.study.hashing import data_hash, design_hash
from llenergymeasure.study.model_fit import fit_problem
from llenergymeasure.study.models import PlannedRun, SkippedCombination
from llenergymeasure.study.order import cycle_order, shuffle_seed

DEFAULT_BACKEND: str = ExperimentConfig.model_fields["backend"].default
_DEFAULT_SOURCE: str = SyntheticPrompts.model_fields["source"].default
_DEFAULT_LENGTH: str = FixedLength.model_fields["distribution"].default
GRID = "grid"
# The most runs (configurations x cycles) one study may plan: what planning, the manifest and
# the results tables are benchmarked at (benchmarks/plan_scale.py, manifest_scale.py).
MAX_RUNS = 100_000


@dataclass(frozen=True)
class PlannedConfig:
    """One distinct configuration of the study (cycles run it several times)."""

    config_index: int
    config: ExperimentConfig
    config_hash: str
    swept: dict[str, Any]
    origin: str = GRID  # "grid", or "experiments[i]": the part of the file it came from
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # config as JSON data


@dataclass(frozen=True)
class Plan:
    """The expanded study: configurations, runs in execution order, skipped combinations."""

    configs: list[PlannedConfig]
    order: list[tuple[int, int]]  # (config_index, cycle) of each run, in execution order
    skipped: list[SkippedCombination] = field(default_factory=list)

    @property
    def n_configs(self) -> int:
        return len(self.configs)

    @property
    def n_runs(self) -> int:
        return len(self.order)

    @property
    def n_cycles(self) -> int:
        return len(self.order) // len(self.configs) if self.configs else 0

    def run_id(self, run_index: int) -> str:
        config_index, cycle = self.order[run_index]
        return run_dir_name(run_index, self.configs[config_index].config_hash, cycle)

    @cached_property
    def runs(self) -> list[PlannedRun]:
        """Every run, made when first asked for (a JSON plan or an estimate needs none)."""
        runs = []
        for run_index, (config_index, cycle) in enumerate(self.order):
            planned = self.configs[config_index]
            runs.append(
                PlannedRun.model_construct(
                    run_index=run_index,
                    run_id=self.run_id(run_index),
                    config_hash=planned.config_hash,
                    config_index=config_index,
                    cycle=cycle,
                    swept=planned.swept,
                    config=planned.config,
                )
            )
        return runs


@dataclass(frozen=True)
class _Dimension:
    key: str
    path: tuple[str, ...]
    values: list[Any]
    written_at: str  # "sweep" or "experiments[i].sweep"

    @classmethod
    def all_of(cls, sweep: dict[str, list[Any]], written_at: str) -> list[_Dimension]:
        return [
            cls(key, tuple(key.split(".")), values, written_at) for key, values in sweep.items()
        ]


@dataclass(frozen=True)
class _Source:
    """A part of the study that expands into configurations: the grid, or one entry."""

    entry: int | None
    data: dict[str, Any]  # defaults, with the entry merged over them
    entry_data: dict[str, Any] | None  # the entry as written, less its own sweep
    dimensions: list[_Dimension]

    @property
    def origin(self) -> str:
        return GRID if self.entry is None else f"experiments[{self.entry}]"


@dataclass(frozen=True)
class _Combination:
    source: _Source
    choices: tuple[tuple[_Dimension, int], ...]
    data: dict[str, Any]

    @property
    def entry(self) -> int | None:
        return self.source.entry

    def swept(self) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        entry_data = self.source.entry_data
        if entry_data:
            for path in leaf_paths(entry_data):
                shown[".".join(path)] = get_path(entry_data, path)
        for dimension, item in self.choices:
            shown[dimension.key] = dimension.values[item]
        return shown

    def made(self, detail: ErrorDetails) -> bool:
        """Whether this combination made the error: a cross-field rule a swept value takes
        part in (anything else is the document's own mistake)."""
        fields = combination_fields(detail)
        return fields is not None and any(self.sweeps(path) for path in fields)

    def sweeps(self, path: tuple[str, ...]) -> bool:
        """Whether a swept value of this combination is, holds or lies inside `path`."""
        for dimension, _ in self.choices:
            short = min(len(path), len(dimension.path))
            if path[:short] == dimension.path[:short]:
                return True
        return False


def expand(study: StudyConfig, inputs_dir: Path | None = None) -> Plan:
    """Validated configurations and the ordered runs (configs x cycles) of a study.

    `inputs_dir`: where relative model paths resolve from (default: the study file's folder);
    a configuration that does not fit a local model's context is skipped with its reason.
    Raises UserError for a mistake in the document or when every combination is invalid.
    """
    if inputs_dir is None and study.source_path is not None:
        inputs_dir = study.source_path.resolve().parent
    # The plan is many long-lived objects: cyclic-GC passes over it as it grows make expansion
    # superlinear (10^5 runs: ~2x slower). Temporaries are still freed by reference counting.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _expand(study, inputs_dir)
    finally:
        if collecting:
            gc.enable()


def _expand(study: StudyConfig, inputs_dir: Path | None) -> Plan:
    locator = _Locator(study)
    sources = _sources(study)
    _check_entries_against_sweep(sources, locator)
    _check_size(sources, study, locator)

    configs: list[PlannedConfig] = []
    skipped: list[SkippedCombination] = []
    backends_used: dict[int | None, set[str]] = {}
    for combination in _combinations(sources):
        backend = combination.data.get("backend", DEFAULT_BACKEND)
        if isinstance(backend, str):
            backends_used.setdefault(combination.entry, set()).add(backend)
        try:
            config = ExperimentConfig.model_validate(combination.data)
        except ValidationError as error:
            reason = _combination_reason(error, combination)
            if reason is None:
                raise locator.document_error(error, combination) from None
            skipped.append(SkippedCombination(swept=combination.swept(), reason=reason))
            continue
        reason = serving_problem(config) or fit_problem(config, inputs_dir)
        if reason is not None:
            skipped.append(SkippedCombination(swept=combination.swept(), reason=reason))
            continue
        data = config.model_dump(mode="json")
        configs.append(
            PlannedConfig(
                config_index=len(configs),
                config=config,
                config_hash=data_hash(data),
                swept=_as_validated(combination.swept(), data),
                origin=combination.source.origin,
                data=data,
            )
        )
    _check_sections_used(study, sources, backends_used, locator)
    if not configs:
        first = skipped[0]
        values = ", ".join(f"{k}={v!r}" for k, v in first.swept.items())
        example = f" (first: {values})" if values else ""
        raise UserError(
            f"{locator.study_file}: every combination of the study is invalid: "
            f"{len(skipped)} of {len(skipped)}{example}: {first.reason}",
            hint="change the values this reason names",
        )

    seed = shuffle_seed(study.execution, design_hash(study))
    order = cycle_order(len(configs), study.execution, seed)
    return Plan(configs=configs, order=order, skipped=skipped)


def _check_size(sources: list[_Source], study: StudyConfig, locator: _Locator) -> None:
    """At most MAX_RUNS runs, counted before anything is expanded: a study file cannot make
    llem build millions of configurations in memory."""
    configurations = sum(_combination_count(source) for source in sources)
    runs = configurations * study.execution.n_cycles
    if runs > MAX_RUNS:
        where = locator.study_file
        if study.source_map is not None and study.sweep:
            where = study.source_map.where("sweep")
        raise UserError(
            f"{where}: the study plans {runs:,} runs ({configurations:,} configurations x "
            f"{study.execution.n_cycles} cycles), above the {MAX_RUNS:,} a study may hold",
            hint="split it into several studies, or sweep fewer values",
        )


def _combination_count(source: _Source) -> int:
    """The configurations a source expands to (skipped ones included): the product of its
    common dimensions, a backend's own dimensions multiplying only that backend's share."""
    backend_dim = next((d for d in source.dimensions if d.path == ("backend",)), None)
    common = [d for d in source.dimensions if d.path[0] not in BACKENDS and d is not backend_dim]
    count = math.prod(len(d.values) for d in common)
    backends = backend_dim.values if backend_dim else [source.data.get("backend", DEFAULT_BACKEND)]
    scoped = sum(
        math.prod(len(d.values) for d in source.dimensions if d.path[0] == backend)
        for backend in backends
    )
    return count * scoped


def _as_validated(swept: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Swept values as the validated config holds them (YAML's .inf -> 'inf'), so the plan, the
    results' columns and the file agree; a key the config does not hold keeps its value."""
    out = {}
    for key, value in swept.items():
        node: Any = data
        for part in key.split("."):
            node = node.get(part, value) if isinstance(node, dict) else value
        out[key] = node
    return out


def serving_problem(config: ExperimentConfig) -> str | None:
    """Why `mode: serving` cannot run on the config's backend (it has no server of its own in
    llem's image), else None."""
    reason = spec_of(config.backend).no_server_reason
    if config.mode != "serving" or reason is None:
        return None
    return (
        f"mode: serving needs the backend's own OpenAI-compatible server; backend "
        f"'{config.backend}' has none here: {reason}"
    )


def _sources(study: StudyConfig) -> list[_Source]:
    """The grid (when there is a sweep, or nothing else), then each experiments entry."""
    defaults = deep_merge(study.base_defaults, study.defaults)
    sources = []
    if study.sweep or not study.experiments:
        sources.append(_Source(None, defaults, None, _Dimension.all_of(study.sweep, "sweep")))
    for index, entry in enumerate(study.experiments):
        own = {key: value for key, value in entry.items() if key != "sweep"}
        sweep = flatten_sweep(entry.get("sweep") or {})
        dimensions = _Dimension.all_of(sweep, f"experiments[{index}].sweep")
        sources.append(_Source(index, deep_merge(defaults, own), own, dimensions))
    return sources


def _combinations(sources: list[_Source]) -> Iterator[_Combination]:
    for source in sources:
        yield from _source_combinations(source)


def _source_combinations(source: _Source) -> Iterator[_Combination]:
    dimensions = source.dimensions
    common = [d for d in dimensions if d.path[0] not in BACKENDS]
    scoped: dict[str, list[_Dimension]] = {}
    for dimension in dimensions:
        if dimension.path[0] in BACKENDS:
            scoped.setdefault(dimension.path[0], []).append(dimension)
    base = source.data
    for point in itertools.product(*(range(len(d.values)) for d in common)):
        choices = tuple(zip(common, point, strict=True))
        data = base
        for dimension, item in choices:
            data = set_path(data, dimension.path, dimension.values[item])
        backend = data.get("backend", DEFAULT_BACKEND)
        own = scoped.get(backend, []) if isinstance(backend, str) else []
        for scoped_point in itertools.product(*(range(len(d.values)) for d in own)):
            scoped_choices = tuple(zip(own, scoped_point, strict=True))
            full = data
            for dimension, item in scoped_choices:
                full = set_path(full, dimension.path, dimension.values[item])
            full = finish_data(full)
            yield _Combination(source, choices + scoped_choices, full)


def finish_data(data: dict[str, Any]) -> dict[str, Any]:
    """A combination's data as it is validated: its own backend's section only, and the
    contract's default tags filled in."""
    return _with_default_tags(_own_section(data))


def _with_default_tags(data: dict[str, Any]) -> dict[str, Any]:
    """A `prompts:` block without `source` is synthetic, an `input_length:` without
    `distribution` is fixed: the contract's defaults, which its tagged unions cannot infer."""
    prompts = data.get("prompts")
    if not isinstance(prompts, dict):
        return data
    if "source" not in prompts:
        data = set_path(data, ("prompts", "source"), _DEFAULT_SOURCE)
    length = prompts.get("input_length")
    if isinstance(length, dict) and "distribution" not in length:
        data = set_path(data, ("prompts", "input_length", "distribution"), _DEFAULT_LENGTH)
    return data


def _own_section(data: dict[str, Any]) -> dict[str, Any]:
    """Drop the sections of the other backends (a mixed study's defaults hold all of them)."""
    backend = data.get("backend", DEFAULT_BACKEND)
    foreign = [name for name in BACKENDS if name != backend and name in data]
    if not foreign:
        return data
    return {key: value for key, value in data.items() if key not in foreign}


def combination_fields(detail: ErrorDetails) -> tuple[tuple[str, ...], ...] | None:
    """The paths (from the experiment's root) a broken cross-field rule involves; None when
    the error is not a `CombinationError`."""
    cause = (detail.get("ctx") or {}).get("error")
    if not isinstance(cause, CombinationError):
        return None
    model_path, _ = walk_loc(ExperimentConfig, detail["loc"])
    prefix = tuple(str(key) for key in model_path)
    return tuple(prefix + tuple(name.split(".")) for name in cause.fields) or (prefix,)


def _combination_reason(error: ValidationError, combination: _Combination) -> str | None:
    """The reason a combination is skipped, or None when the document itself is wrong: an
    error that is no cross-field rule, or a rule broken by values no sweep chose."""
    reasons = []
    for detail in error.errors():
        if not combination.made(detail):
            return None
        path, holder = walk_loc(ExperimentConfig, detail["loc"])
        where = display("", path)
        text = problem(detail, holder)
        reasons.append(f"{where}: {text}" if where else text)
    return "; ".join(reasons)


def _check_entries_against_sweep(sources: list[_Source], locator: _Locator) -> None:
    """An entry may not set a key its own sweep varies (the two would silently fight)."""
    for source in sources:
        if not source.entry_data:
            continue
        for leaf in leaf_paths(source.entry_data):
            for dimension in source.dimensions:
                short = min(len(leaf), len(dimension.path))
                if leaf[:short] == dimension.path[:short]:
                    path = display(source.origin, leaf)
                    swept = f"{dimension.written_at}.{dimension.key}"
                    raise UserError(
                        f"{locator.where(path)}: {path}: also swept by {swept} "
                        f"({locator.where(swept)}); the sweep would override it",
                        hint="set it in the entry or sweep it, not both",
                    )


def _check_sections_used(
    study: StudyConfig,
    sources: list[_Source],
    backends_used: dict[int | None, set[str]],
    locator: _Locator,
) -> None:
    """A backend section or scoped dimension no configuration can use is a mistake."""
    every = set().union(*backends_used.values()) if backends_used else set()
    fix = "remove it, or set (or sweep) backend to include {name}"
    for name in BACKENDS:
        if name in every:
            continue
        for layer, source in ((study.defaults, locator.study), (study.base_defaults, locator.base)):
            if name in layer:
                where = source.where(name) if source else name
                raise UserError(
                    f"{where}: {name}: a '{name}:' section, but no configuration uses backend "
                    f"'{name}' (backends: {', '.join(sorted(every))})",
                    hint=fix.format(name=name),
                )
    for source in sources:
        used = backends_used.get(source.entry, set())
        for dimension in source.dimensions:
            name = dimension.path[0]
            if name in BACKENDS and name not in used:
                path = f"{dimension.written_at}.{dimension.key}"
                raise UserError(
                    f"{locator.where(path)}: {path}: scoped to backend '{name}', but no "
                    f"configuration of the {_part(source)} uses it "
                    f"(backends: {', '.join(sorted(used))})",
                    hint=fix.format(name=name),
                )
    for index, entry in enumerate(study.experiments):
        used = backends_used.get(index, set())
        for name in BACKENDS:
            if name in entry and name not in used:
                path = f"experiments[{index}].{name}"
                raise UserError(
                    f"{locator.where(path)}: {path}: a '{name}:' section, but this entry's "
                    f"backend is {', '.join(sorted(used))}",
                    hint=f"remove the section or set backend: {name} in this entry",
                )


def _part(source: _Source) -> str:
    return "grid" if source.entry is None else f"entry experiments[{source.entry}]"


class _Locator:
    """Where in the files a value of a combination came from, for file:line messages."""

    def __init__(self, study: StudyConfig) -> None:
        self.study_obj = study
        self.study: SourceMap | None = study.source_map
        self.base: SourceMap | None = study.base_source_map
        self.study_file = self.study.file if self.study else "study"

    def where(self, path: str) -> str:
        return self.study.where(path) if self.study else "study"

    def document_error(self, error: ValidationError, combination: _Combination) -> UserError:
        """The first error the document made (not a combination the sweep made), located in
        the layer that supplied the value; a broken cross-field rule at the first of its
        fields that a layer wrote."""
        detail = next(d for d in error.errors() if not combination.made(d))
        path, holder = walk_loc(ExperimentConfig, detail["loc"])
        keys = tuple(str(k) for k in path)
        text = problem(detail, holder, display("", path))
        for involved in combination_fields(detail) or ():
            shown, source = self._origin(involved, combination)
            if shown is not None:
                where = source.where(shown) if source else "study"
                return UserError(f"{where}: {shown}: {text}")
        shown, source = self._origin(keys, combination)
        if shown is None:
            target = f"experiments[{combination.entry}]" if combination.entry is not None else ""
            where = self.where(target) if target else self.study_file
            name = display("", path)
            return UserError(
                f"{where}: {name}: {text}",
                hint=f"set {name} at the top level of the study or in every experiments entry",
            )
        where = source.where(shown) if source else "study"
        return UserError(f"{where}: {shown}: {text}")

    def _origin(
        self, keys: tuple[str, ...], combination: _Combination
    ) -> tuple[str | None, SourceMap | None]:
        # A missing key is located at the nearest enclosing block that some layer wrote.
        for cut in range(len(keys), 0, -1):
            shown, source = self._layer_of(keys[:cut], combination)
            if shown is not None:
                return display(shown, keys[cut:]), source
        return None, None

    def _layer_of(
        self, keys: tuple[str, ...], combination: _Combination
    ) -> tuple[str | None, SourceMap | None]:
        for dimension, item in combination.choices:
            depth = len(dimension.path)
            if keys[:depth] == dimension.path:
                written = f"{dimension.written_at}.{dimension.key}[{item}]"
                return display(written, keys[depth:]), self.study
        study = self.study_obj
        entry = combination.source.entry_data
        if combination.entry is not None and entry is not None and _holds(entry, keys):
            return display(f"experiments[{combination.entry}]", keys), self.study
        if _holds(study.defaults, keys):
            return display("", keys), self.study
        if _holds(study.base_defaults, keys):
            return display("", keys), self.base
        return None, None


def _holds(layer: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """`layer` sets the value at `keys`, or a non-mapping value on the way to it."""
    node: Any = layer
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
        if not isinstance(node, dict):
            return True
    return True
