"""merge helpers: deep merge, path updates without mutation, sweep flattening."""

from __future__ import annotations

from llenergymeasure.config.merge import deep_merge, flatten_sweep, leaf_paths, set_path


def test_deep_merge_merges_nested_and_replaces_scalars() -> None:
    base = {"a": 1, "b": {"x": 1, "y": 2}}
    merged = deep_merge(base, {"b": {"y": 3}, "c": 4})
    assert merged == {"a": 1, "b": {"x": 1, "y": 3}, "c": 4}
    assert base == {"a": 1, "b": {"x": 1, "y": 2}}


def test_deep_merge_replaces_a_block_whose_tag_changes() -> None:
    base = {"prompts": {"source": "synthetic", "seed": 3}}
    merged = deep_merge(base, {"prompts": {"source": "jsonl", "path": "p"}})
    assert merged == {"prompts": {"source": "jsonl", "path": "p"}}


def test_set_path_copies_only_along_the_path() -> None:
    shared = {"k": 1}
    data = {"a": {"b": 1}, "other": shared}
    out = set_path(data, ("a", "b"), 2)
    assert out == {"a": {"b": 2}, "other": {"k": 1}}
    assert data == {"a": {"b": 1}, "other": {"k": 1}}
    assert out["other"] is shared
    assert set_path({}, ("x", "y"), 5) == {"x": {"y": 5}}


def test_flatten_sweep() -> None:
    flat = flatten_sweep({"pytorch": {"batch_size": [1, 8]}, "max_new_tokens": 64, "a.b": [1]})
    assert flat == {"pytorch.batch_size": [1, 8], "max_new_tokens": [64], "a.b": [1]}


def test_leaf_paths() -> None:
    assert leaf_paths({"a": 1, "b": {"c": 2, "d": {}}}) == [("a",), ("b", "c"), ("b", "d")]
