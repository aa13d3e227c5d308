"""`load_study(path)`: read a study file (and its base file) into a StudyConfig.

Every problem in the document becomes one UserError naming the file, the line and the dotted
path. Problems that depend on a particular combination of values are found by the expansion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from llenergymeasure.config.merge import flatten_sweep
from llenergymeasure.config.messages import did_you_mean, display, problem, walk_loc, walk_schema
from llenergymeasure.config.search import SearchConfig, flatten_space
from llenergymeasure.config.source import SourceMap, join, read_yaml
from llenergymeasure.config.study import ExecutionConfig, StudyConfig
from llenergymeasure.contract.config import BACKENDS, ExperimentConfig
from llenergymeasure.errors import UserError

STUDY_KEYS = (
    "name",
    "output_dir",
    "offline",
    "images",
    "execution",
    "sweep",
    "experiments",
    "base",
    "search",
)
EXPERIMENT_KEYS = tuple(ExperimentConfig.model_fields)


def load_study(path: Path) -> StudyConfig:
    """Read and check a study file; raise UserError (file:line: path: problem) on any mistake."""
    path = Path(path)
    document, source = read_yaml(path)
    if document is None:
        raise UserError(f"{source.file}: the study file is empty", hint=_STARTER_HINT)
    if not isinstance(document, dict):
        raise UserError(
            f"{source.where('')}: a study file is a mapping of keys, not a "
            f"{type(document).__name__}",
            hint=_STARTER_HINT,
        )
    _check_keys(document, "", STUDY_KEYS + EXPERIMENT_KEYS, source)

    base_defaults: dict[str, Any] = {}
    base_map: SourceMap | None = None
    base_path: Path | None = None
    base_text: str | None = None
    if "base" in document:
        base_path, base_defaults, base_map = _load_base(document["base"], path, source)
        base_text = base_path.read_text(encoding="utf-8")

    fields: dict[str, Any] = {"name": path.stem}
    for key in ("name", "output_dir", "offline", "base"):
        if key in document:
            fields[key] = document[key]
    if "images" in document:
        fields["images"] = _images(document["images"], source)
    if "execution" in document:
        fields["execution"] = _validated(
            ExecutionConfig, document["execution"], "execution", source
        )
    if "sweep" in document:
        fields["sweep"] = _sweep(document["sweep"], source)
    backends = _backend_list(document, source)
    if backends is not None:
        # `backend: [pytorch, vllm]` sweeps backends exactly as sweep.backend does, outermost.
        fields["sweep"] = {"backend": backends, **fields.get("sweep", {})}
    if "experiments" in document:
        fields["experiments"] = _experiments(document["experiments"], source)
    if "search" in document:
        fields["search"] = _search(document["search"], fields.get("sweep", {}), source)
    fields["defaults"] = {
        k: v
        for k, v in document.items()
        if k in EXPERIMENT_KEYS and not (k == "backend" and backends is not None)
    }
    fields["base_defaults"] = base_defaults

    study = _validated(StudyConfig, fields, "", source)
    study.source_path = path
    study.source_text = path.read_text(encoding="utf-8")
    study.base_path = base_path
    study.base_text = base_text
    study.attach_sources(source, base_map)
    return study


_STARTER_HINT = "start from a file in examples/, e.g. examples/single-backend-sweep.yaml"


def _check_keys(
    mapping: dict[str, Any], prefix: str, allowed: tuple[str, ...], source: SourceMap
) -> None:
    for key in mapping:
        if key not in allowed:
            path = join(prefix, key)
            raise UserError(
                f"{source.where(path)}: {path}: unknown key '{key}'"
                f"{did_you_mean(key, allowed, path)}"
            )


def _load_base(
    value: Any, study_path: Path, source: SourceMap
) -> tuple[Path, dict[str, Any], SourceMap]:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{source.where('base')}: base: must be a file name (got {value!r})")
    base_path = (study_path.parent / value).resolve()
    if not base_path.is_file():
        raise UserError(
            f"{source.where('base')}: base: file '{value}' not found (looked for {base_path})",
            hint="base is relative to the study file's folder",
        )
    document, base_map = read_yaml(base_path, display=str(study_path.parent / value))
    if document is None:
        return base_path, {}, base_map
    if not isinstance(document, dict):
        raise UserError(f"{base_map.where('')}: a base file is a mapping of experiment defaults")
    for key in document:
        if key in STUDY_KEYS:
            raise UserError(
                f"{base_map.where(key)}: {key}: a base file holds experiment defaults only; "
                f"'{key}' belongs in the study file"
            )
    _check_keys(document, "", EXPERIMENT_KEYS, base_map)
    return base_path, document, base_map


def _backend_list(document: dict[str, Any], source: SourceMap) -> list[Any] | None:
    """A top-level `backend:` list (the backends the study sweeps), or None for one backend."""
    value = document.get("backend")
    if not isinstance(value, list):
        return None
    if not value:
        raise UserError(f"{source.where('backend')}: backend: an empty list; name a backend")
    sweep = document.get("sweep")
    if isinstance(sweep, dict) and "backend" in sweep:
        raise UserError(
            f"{source.where('backend')}: backend: a list sweeps backends, and so does "
            f"sweep.backend ({source.where('sweep.backend')})",
            hint="keep one of the two",
        )
    return value


def _images(value: Any, source: SourceMap) -> dict[str, str]:
    if not isinstance(value, dict):
        raise UserError(
            f"{source.where('images')}: images: must map a backend to an image reference",
            hint="e.g. images: {pytorch: llenergymeasure/pytorch:0.1.0}",
        )
    _check_keys(value, "images", BACKENDS, source)
    for backend, ref in value.items():
        if not isinstance(ref, str) or not ref.strip() or any(c.isspace() for c in ref):
            path = join("images", backend)
            raise UserError(f"{source.where(path)}: {path}: not an image reference ({ref!r})")
    return value


def _sweep(value: Any, source: SourceMap, at: str = "sweep") -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise UserError(
            f"{source.where(at)}: {at}: must be a non-empty mapping of key -> list of values",
            hint="e.g. sweep: {max_new_tokens: [64, 256], pytorch.batch_size: [1, 8]}",
        )
    _check_sweep_node(value, "", source, at)
    return value


def _check_sweep_node(node: dict[str, Any], prefix: str, source: SourceMap, at: str) -> None:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        path = join(at, dotted)
        parts = dotted.split(".")
        if any(not part for part in parts):
            raise UserError(f"{source.where(path)}: {path}: empty part in a dotted key")
        if not isinstance(value, dict):  # a leaf: its whole path is known
            _check_swept_path(parts, at, source.where(path))
        if isinstance(value, dict):
            if not value:
                raise UserError(f"{source.where(path)}: {path}: empty mapping; list values")
            _check_sweep_node(value, f"{dotted}.", source, at)
        elif isinstance(value, list) and not value:
            raise UserError(
                f"{source.where(path)}: {path}: empty list; a swept key needs at least one value"
            )


def _check_swept_path(parts: list[str], at: str, where: str) -> None:
    """Every part of a swept key names a field of the experiment's schema: an unknown one is
    named with its full dotted path, at the swept key's line."""
    walk = walk_schema(ExperimentConfig, parts)
    if walk.unknown_at is not None:
        part = parts[walk.unknown_at]
        shown = join(at, ".".join(parts[: walk.unknown_at + 1]))
        raise UserError(
            f"{where}: {shown}: unknown key '{part}'"
            f"{did_you_mean(part, walk.offered, '.'.join(parts))}"
        )


def _search(value: Any, sweep: dict[str, Any], source: SourceMap) -> SearchConfig:
    """The search section; each space key names an experiment field and is not also swept."""
    if not isinstance(value, dict):
        raise UserError(
            f"{source.where('search')}: search: must be a mapping (objective, space, trials...)",
            hint="see README: Searching instead of sweeping",
        )
    space = value.get("space")
    if isinstance(space, dict):
        swept = set(flatten_sweep(sweep))
        for key in flatten_space(space):
            path = join("search.space", key)
            parts = key.split(".")
            if any(not part for part in parts):
                raise UserError(f"{source.where(path)}: {path}: empty part in a dotted key")
            _check_swept_path(parts, "search.space", source.where(path))
            if key in swept:
                raise UserError(
                    f"{source.where(path)}: {path}: also swept by sweep.{key} "
                    f"({source.where(join('sweep', key))}); a key is swept or searched, not both",
                    hint="sweep keys multiply: the search runs within each of their combinations",
                )
    return _validated(SearchConfig, value, "search", source)


def _experiments(value: Any, source: SourceMap) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise UserError(
            f"{source.where('experiments')}: experiments: must be a non-empty list of mappings",
            hint="e.g. experiments: [{model: gpt2}, {model: gpt2-medium}]",
        )
    for index, entry in enumerate(value):
        path = join("experiments", index)
        if not isinstance(entry, dict):
            raise UserError(
                f"{source.where(path)}: {path}: each experiment is a mapping of keys "
                f"(got {type(entry).__name__})"
            )
        _check_keys(entry, path, (*EXPERIMENT_KEYS, "sweep"), source)
        if "sweep" in entry:
            _sweep(entry["sweep"], source, join(path, "sweep"))
    return value


def _validated(model: type[BaseModel], data: Any, prefix: str, source: SourceMap) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_user_error(error, model, prefix, source) from None


def validation_user_error(
    error: ValidationError, model: type[BaseModel], prefix: str, source: SourceMap
) -> UserError:
    """The first error of `error` as one UserError located in `source`."""
    first = error.errors()[0]
    path, holder = walk_loc(model, first["loc"])
    shown = display(prefix, path) or "(top level)"
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    lookup = display(prefix, path)
    text = problem(first, holder, lookup)
    return UserError(f"{source.where(lookup)}: {shown}: {text}{suffix}")
