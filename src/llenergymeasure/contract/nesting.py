"""How deep a JSON or YAML document a user gives may nest: one cap for every parse of one.

Python's parsers recurse once per level, so a document nested thousands of levels deep (a
prompt record, a study file written as JSON) ends in a RecursionError, a traceback, at a depth
that depends on the stack the parser happens to be called from: the host's plan-time check and
the container could disagree. So a document nested deeper than `MAX_NESTING` is refused before
it is parsed, at the line where it goes too deep. Real documents are far from it: a study file
nests about six levels, a chat record three.

`load_json` is the JSON reader for what a user gives (standard library only: both halves read
prompt files); the study files' YAML reader (`config/source.py`) applies the same cap.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_NESTING = 100
TOO_DEEP = f"nested more than {MAX_NESTING} levels deep"

# A JSON string (no raw newline can be in one); what is not a bracket; what the walk that
# names the line reads (strings, brackets, newlines).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}\n]')
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class NestingError(ValueError):
    """A document nested deeper than MAX_NESTING; `line` (1-based) is where it goes too deep."""

    def __init__(self, line: int) -> None:
        super().__init__(TOO_DEEP)
        self.line = line


def load_json(text: str) -> Any:
    """`json.loads(text)`, refusing a document nested deeper than MAX_NESTING (NestingError)."""
    line = json_too_deep_at(text)
    if line is not None:
        raise NestingError(line)
    return json.loads(text)


def json_too_deep_at(text: str) -> int | None:
    """The line where the brackets of JSON `text` first nest deeper than MAX_NESTING (quoted
    strings skipped), or None. A document with few brackets is passed at once; the running
    depth is summed in C (`accumulate`); only a document found too deep is walked in Python,
    to name its line."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return None
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) <= MAX_NESTING:
        return None
    depth, line = 0, 1
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token == "\n":
            line += 1
        elif token in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                return line
        elif token in ("]", "}"):
            depth -= 1
    return None  # not reached: the sum above found the depth
