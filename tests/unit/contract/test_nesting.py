"""JSON a user gives is refused past MAX_NESTING levels, at its line, before Python's parser
would recurse into a RecursionError; brackets inside strings do not count."""

from __future__ import annotations

import json

import pytest

from llenergymeasure.contract.nesting import MAX_NESTING, NestingError, load_json


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_the_cap_is_exact() -> None:
    assert load_json(nested(MAX_NESTING)) == json.loads(nested(MAX_NESTING))
    with pytest.raises(NestingError, match=f"nested more than {MAX_NESTING} levels deep"):
        load_json(nested(MAX_NESTING + 1))


def test_a_document_deeper_than_python_can_parse_names_its_line() -> None:
    text = '{\n"a": 1,\n"b":\n' + nested(100_000) + "\n}"
    with pytest.raises(NestingError) as raised:
        load_json(text)
    assert raised.value.line == 4


def test_brackets_in_strings_and_mixed_brackets() -> None:
    many = '["' + "[{" * 500 + '\\"[", ' + "{}, " * 500 + "[]]"
    assert len(load_json(many)) == 502
    mixed = '{"a": [' * 50 + "1" + "]}" * 50  # 100 levels, mappings and lists
    assert load_json(mixed)["a"][0]["a"][0]["a"]
    with pytest.raises(NestingError):
        load_json('{"a": [' * 51 + "1" + "]}" * 51)
