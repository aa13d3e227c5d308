"""Reading a study file is bounded: its size, what its aliases expand to, how deep it nests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import plan_quickly
from llenergymeasure.config.migrate import migrate
from llenergymeasure.config.source import parse_yaml
from llenergymeasure.errors import UserError


def test_yaml_aliases_that_expand_exponentially_are_one_message(tmp_path: Path) -> None:
    # 370 bytes that expand to 2.3 million values when every alias is followed.
    lines = ["a: &a [x, x, x, x, x, x, x, x]"]
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}]")
    lines.append("model: [*g, *g, *g, *g, *g, *g, *g, *g, *g]")
    code, err = plan_quickly(tmp_path, "\n".join(lines) + "\n")
    assert code == 2 and "expands to more than 100,000 values" in err
    assert "Traceback" not in err


def test_a_study_file_above_its_size_cap_is_refused(tmp_path: Path) -> None:
    code, err = plan_quickly(tmp_path, "model: m\n" + "# padding\n" * 500_000)
    assert code == 2 and "at most 4 MiB" in err


def test_a_study_file_nested_too_deep_is_one_message_at_its_line(tmp_path: Path) -> None:
    # JSON is YAML: deeper than the parser can recurse, and deep but parseable (block style).
    deep_json = '{"model": "m",\n "sweep": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    code, err = plan_quickly(tmp_path, deep_json)
    assert code == 2 and "study.yaml:2: nested more than 100 levels deep" in err
    assert "Traceback" not in err
    block = "model: m\nsweep:\n" + "".join(" " * k + f"k{k}:\n" for k in range(1, 120)) + "\n"
    code, err = plan_quickly(tmp_path, block)
    assert code == 2 and "study.yaml:101: nested more than 100 levels deep" in err


def test_a_study_file_at_the_nesting_cap_is_read(tmp_path: Path) -> None:
    # the document's mapping and 99 lists: 100 levels, then a key no study has
    document, _ = parse_yaml("x: " + "[" * 99 + "]" * 99 + "\n", "s.yaml")
    assert document["x"] == json.loads("[" * 99 + "]" * 99)


def test_migrating_a_file_nested_too_deep_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("model: m\ndecoder:\n  x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(UserError) as raised:
        migrate(path)
    assert str(raised.value).startswith(f"{path}:3: nested more than 100 levels deep")
