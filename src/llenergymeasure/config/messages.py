"""Turning pydantic errors into one user message: the path as written, the problem, a suggestion."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from llenergymeasure.config.peer import suggestion
from llenergymeasure.config.source import join

_SHOWN_INPUT_CHARS = 60


def config_path(shown: str) -> str:
    """The experiment-level dotted path of a displayed one: no `experiments[i].`, `sweep.` or
    index (`experiments[0].sweep.vllm.engine[1]` -> `vllm.engine`)."""
    path = re.sub(r"\[\d+\]", "", shown)
    path = re.sub(r"^experiments\.", "", path)
    return path.removeprefix("sweep.")


def did_you_mean(word: str, options: Iterable[str], path: str | None = None) -> str:
    """A LLenergyMeasure v0.8 spelling's counterpart (`path`: where the word was found), else
    ` (did you mean 'x'?)` for a close option, else ` (valid: a, b, c)` when few, else ``."""
    peer = suggestion(config_path(path)) if path else None
    if peer is not None:
        return peer
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if len(options) <= 12:
        return f" (valid keys: {', '.join(options)})"
    return ""


def models_in(annotation: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return models_in(typing.get_args(annotation)[0])
    if origin is Union or isinstance(annotation, types.UnionType):
        found: list[type[BaseModel]] = []
        for member in typing.get_args(annotation):
            found.extend(models_in(member))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


@dataclass(frozen=True)
class SchemaWalk:
    """Where a dotted path leads in a model's schema."""

    unknown_at: int | None  # the first part the schema lacks; None: every part is known
    offered: tuple[str, ...]  # the keys offered where the walk stopped (for suggestions)
    models: list[type[BaseModel]]  # the models at its end ([]: a plain value, or unknown)


def walk_schema(model: type[BaseModel], parts: list[str]) -> SchemaWalk:
    """Follow `parts` through `model`'s fields (and union members); below a plain value or
    mapping every further part is taken as known (the value's own validation judges it)."""
    models: list[type[BaseModel]] = [model]
    for depth, part in enumerate(parts):
        if not models:
            return SchemaWalk(None, (), [])
        fields = {name: m.model_fields[name] for m in models for name in m.model_fields}
        if part not in fields:
            return SchemaWalk(depth, tuple(fields), [])
        models = models_in(fields[part].annotation)
    return SchemaWalk(None, (), models)


def _tag_of(model: type[BaseModel], discriminator: str) -> str | None:
    field = model.model_fields.get(discriminator)
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return str(args[0]) if args else None


def walk_loc(
    model: type[BaseModel], loc: tuple[int | str, ...]
) -> tuple[tuple[str | int, ...], type[BaseModel] | None]:
    """Strip union tags from a pydantic `loc`; also return the model that holds its last key.

    `('prompts', 'jsonl', 'pth')` -> `(('prompts', 'pth'), JsonlPrompts)`.
    """
    path: list[str | int] = []
    current: type[BaseModel] | None = model
    holder: type[BaseModel] | None = model
    items = list(loc)
    while items:
        key = items.pop(0)
        if key == "[key]":
            continue
        path.append(key)
        holder = current
        sections: dict[str, type[BaseModel]] = getattr(current, "SECTIONS", {})
        if current is not None and key in sections:  # a section folded into a field
            current = sections[key]  # type: ignore[index]
            continue
        if current is None or not isinstance(key, str) or key not in current.model_fields:
            current = None
            continue
        field = current.model_fields[key]
        members = models_in(field.annotation)
        discriminator = field.discriminator
        if isinstance(discriminator, str) and len(members) > 1 and items:
            tag = items.pop(0)
            current = next((m for m in members if _tag_of(m, discriminator) == tag), None)
        else:
            current = members[0] if len(members) == 1 else None
    return tuple(path), holder


def display(prefix: str, path: Iterable[str | int]) -> str:
    shown = prefix
    for key in path:
        shown = join(shown, key)
    return shown


def problem(error: ErrorDetails, holder: type[BaseModel] | None, path: str | None = None) -> str:
    """The problem in words, with the offending input and a suggestion where there is one;
    `path`: the dotted path of the value, for suggestions of LLenergyMeasure v0.8 spellings."""
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        options = holder.model_fields if holder is not None else ()
        return f"unknown key '{key}'{did_you_mean(key, options, path)}"
    if kind == "missing":
        return "required but not set"
    message = error["msg"]
    if kind in ("value_error", "assertion_error"):
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return message
    shown = repr(error.get("input"))
    if len(shown) > _SHOWN_INPUT_CHARS:
        shown = shown[: _SHOWN_INPUT_CHARS - 3] + "..."
    return f"{message[0].lower()}{message[1:]} (got {shown})"
