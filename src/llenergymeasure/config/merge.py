"""Plain-data helpers shared by the loader and the expansion: merging and dotted paths.

They never deep-copy: a merge or a path update copies only the dicts it changes and shares the
rest, which keeps expanding 10^5 combinations cheap. Callers must treat the results as read-only.
"""

from __future__ import annotations

from typing import Any

# A nested block whose tag differs from the one it overrides replaces it instead of merging:
# `prompts: {source: jsonl, path: x}` over synthetic defaults must not inherit `seed`.
DISCRIMINATORS = ("source", "distribution")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged onto `base`: nested dicts merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict) and not _retagged(below, value):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def _retagged(below: dict[str, Any], value: dict[str, Any]) -> bool:
    return any(tag in value and tag in below and value[tag] != below[tag] for tag in DISCRIMINATORS)


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of `data` with `value` at `path`, copying only the dicts along the path."""
    head = path[0]
    out = dict(data)
    if len(path) == 1:
        out[head] = value
    else:
        below = data.get(head)
        out[head] = set_path(below if isinstance(below, dict) else {}, path[1:], value)
    return out


def flatten_sweep(sweep: dict[str, Any], prefix: str = "") -> dict[str, list[Any]]:
    """Nested mappings become dotted keys; a scalar (or a single mapping in a list) stays a value.

    `{pytorch: {batch_size: [1, 8]}, max_new_tokens: 64}` gives
    `{"pytorch.batch_size": [1, 8], "max_new_tokens": [64]}`.
    """
    flat: dict[str, list[Any]] = {}
    for key, value in sweep.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_sweep(value, prefix=f"{dotted}."))
        elif isinstance(value, list):
            flat[dotted] = value
        else:
            flat[dotted] = [value]
    return flat


def leaf_paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of every non-dict value under `data` (an empty dict counts as a leaf)."""
    paths: list[tuple[str, ...]] = []
    for key, value in data.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            paths.extend(leaf_paths(value, path))
        else:
            paths.append(path)
    return paths


def get_path(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path`, or KeyError."""
    node: Any = data
    for key in path:
        if not isinstance(node, dict):
            raise KeyError(key)
        node = node[key]
    return node
