"""YAML reading that keeps where every key and list item is, for file:line messages."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from llenergymeasure.contract.nesting import MAX_NESTING, TOO_DEEP, json_too_deep_at
from llenergymeasure.errors import UserError


def join(prefix: str, key: str | int) -> str:
    """Display path: `a.b`, `a[2]`, `a[2].b`."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def parent(path: str) -> str | None:
    """`a.b[2]` -> `a.b` -> `a` -> `` -> None."""
    if not path:
        return None
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


@dataclass
class SourceMap:
    """Line (1-based) of each display path in one YAML file."""

    file: str
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, path: str) -> int | None:
        """Line of `path`, else of its nearest enclosing key."""
        probe: str | None = path
        while probe is not None:
            if probe in self.lines:
                return self.lines[probe]
            probe = parent(probe)
        return None

    def where(self, path: str) -> str:
        """`file:line` for `path` (just `file` when no line is known)."""
        line = self.line(path)
        return f"{self.file}:{line}" if line is not None else self.file


# A study file is a page of settings: these bound what reading one may cost. Anchors and aliases
# are allowed (they are handy for repeated blocks) but every value they expand to counts; no
# mapping or list may be nested deeper than MAX_NESTING (contract/nesting.py), as in JSON.
MAX_FILE_BYTES = 4 << 20
MAX_VALUES = 100_000
_NESTING_HINT = "a study file is a page of settings: a key's value is a few levels deep at most"


def read_yaml(path: Path, display: str | None = None) -> tuple[Any, SourceMap]:
    """Parse a YAML file into plain dicts/lists/scalars and the line of every key."""
    shown = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(
                f"{shown}: {size} bytes; a study file may have at most {MAX_FILE_BYTES >> 20} MiB"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{shown}: is a folder, not a study file") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{shown}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise UserError(f"{shown}: cannot read ({error.strerror})") from None
    return parse_yaml(text, shown)


def parse_yaml(text: str, shown: str) -> tuple[Any, SourceMap]:
    """Parse YAML text; `shown` names it in messages."""
    check_flow_nesting(text, shown)  # block style: refused by the walk (`_plain`) or on recursion
    try:
        document = YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = error.problem or error.context or "invalid YAML"
        raise UserError(f"{where}: YAML syntax error: {_one_line(problem)}") from None
    except YAMLError as error:
        raise UserError(f"{shown}: YAML error: {_one_line(str(error))}") from None
    except RecursionError:
        raise too_deep(shown, nesting_line(text)) from None
    source = SourceMap(shown)
    return _plain(document, "", source, 1, _Budget(shown), 0), source


def check_flow_nesting(text: str, shown: str) -> None:
    """Refuse flow-style YAML (JSON) nested deeper than MAX_NESTING before a parser recurses
    into it (seconds, for a document thousands deep): its brackets show it, cheaply."""
    if json_too_deep_at(text) is not None:
        line = nesting_line(text)
        if line is not None:
            raise too_deep(shown, line)


def nesting_line(text: str) -> int | None:
    """The line of the first mapping or list of YAML `text` nested deeper than MAX_NESTING, or
    None. The parser's events are read only that far (they need no recursion), so a document
    nested thousands deep costs no more than its first levels."""
    depth = 0
    try:
        for event in YAML(typ="rt", pure=True).parse(text):
            if isinstance(event, MappingStartEvent | SequenceStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    return int(event.start_mark.line) + 1
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                depth -= 1
    except YAMLError:
        return None  # the parse itself names the mistake
    return None


def too_deep(shown: str, line: int | None) -> UserError:
    where = shown if line is None else f"{shown}:{line}"
    return UserError(f"{where}: {TOO_DEEP}", hint=_NESTING_HINT)


class _Budget:
    """Counts the values a document expands to (an alias counts each time it is used)."""

    def __init__(self, shown: str) -> None:
        self.shown, self.left = shown, MAX_VALUES

    def spend(self, line: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise UserError(
                f"{self.shown}:{line}: the file expands to more than {MAX_VALUES:,} values "
                "(anchors and aliases included)",
                hint="a study file is a page of settings: use sweep: instead of long lists, and "
                "no alias of an alias of ...",
            )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plain(node: Any, path: str, source: SourceMap, line: int, budget: _Budget, depth: int) -> Any:
    """ruamel's round-trip types to plain Python, recording lines on the way; `depth`: the
    mappings and lists `node` is inside."""
    budget.spend(line)
    if isinstance(node, CommentedMap | CommentedSeq) and depth == MAX_NESTING:
        raise too_deep(source.file, line)
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key in node:
            key_line = node.lc.key(key)[0] + 1
            if not isinstance(key, str):
                raise UserError(
                    f"{source.file}:{key_line}: {join(path, str(key)) or key}: keys must be "
                    f"names, not {type(key).__name__} ({key!r})",
                    hint="quote the key or fix the indentation",
                )
            child = join(path, key)
            source.lines.setdefault(child, key_line)
            out[key] = _plain(node[key], child, source, key_line, budget, depth + 1)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            child = join(path, index)
            item_line = node.lc.item(index)[0] + 1
            source.lines.setdefault(child, item_line)
            items.append(_plain(item, child, source, item_line, budget, depth + 1))
        return items
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (datetime.date, datetime.datetime)):
        return node.isoformat()
    where = f"{source.file}:{line}"
    raise UserError(
        f"{where}: {path or '(document)'}: unsupported YAML value {type(node).__name__}",
        hint="use plain mappings, lists, strings, numbers and booleans (no tags)",
    )
