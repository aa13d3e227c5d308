"""The prompt set: synthetic (seeded, exact in the model's tokens), shared-prefix groups, a
file (JSONL, ShareGPT, OpenAI-chat JSONL, a trace) or a dataset; each prompt as token ids, with
what the source says of its request (text, conversation, output length, arrival).

Each source's class names its builder here (`builder`, "module:function"); every builder is
called as `builder(config, source, backend, offline)`. A file source's file is read by the
contract's reader (the one the host ran at plan time), then tokenised here.
"""

from __future__ import annotations

import importlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from llenergymeasure.backends.base import BackendAdapter
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.prompt_files import FileRequest, PromptFileError, read_requests
from llenergymeasure.contract.prompt_lengths import draw_lengths
from llenergymeasure.contract.prompt_sources import (
    HFDatasetPrompts,
    PromptFileSource,
    PromptSourceBase,
    SharedPrefixPrompts,
    SyntheticPrompts,
    TracePrompts,
)

# Plain words: any tokenizer splits them into ordinary (non-special) tokens.
_WORD_TEXT = (
    "time year people way day man thing woman life child world school state family student "
    "group country problem hand part place case week company system program question work "
    "government number night point home water room mother area money story fact month lot "
    "right study book eye job word business issue side kind head house service friend father "
    "power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war "
    "history party result change morning reason research girl guy moment air teacher force "
    "education energy light river mountain engine signal measure value token window battery "
    "market garden winter summer music paper field table window model train bridge harbor"
)
_WORDS = _WORD_TEXT.split()


class PromptError(ValueError):
    """The prompt source cannot give the configured prompt set."""


@dataclass
class PromptSet:
    """Prompt k as token ids (`ids[k]`, what offline batches and /v1/completions get), and per
    prompt what its source adds: the text it came from, the conversation a chat source sends,
    the source's output length (a token count) and a trace's arrival time."""

    ids: list[list[int]]
    texts: list[str | None] = field(default_factory=list)
    messages: list[list[dict[str, str]] | None] = field(default_factory=list)
    output_tokens: list[int | None] = field(default_factory=list)
    arrivals_s: list[float] | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.texts = self.texts or [None] * n
        self.messages = self.messages or [None] * n
        self.output_tokens = self.output_tokens or [None] * n


class _Words:
    """Seeded plain-word text cut to exact lengths in this model's tokens (the same text on
    every backend for a seed). Special tokens are never part of a prompt."""

    def __init__(self, backend: BackendAdapter, seed: int) -> None:
        self.backend, self.rng = backend, random.Random(seed)
        self.special = backend.special_token_ids()

    def ids(self, n: int) -> list[int]:
        words: list[str] = []
        ids: list[int] = []
        while len(ids) < n:
            words.extend(self.rng.choice(_WORDS) for _ in range(n - len(ids) + 1))
            ids = [
                t
                for t in self.backend.encode(" ".join(words), add_special_tokens=False)
                if t not in self.special
            ]
        return ids[:n]


Builder = Callable[[ExperimentConfig, PromptSourceBase, BackendAdapter, bool], PromptSet]


def builder_of(source: PromptSourceBase) -> Builder:
    """The function that makes `source`'s prompt set, as its class names it."""
    module, _, name = source.builder.partition(":")
    found: Builder = getattr(importlib.import_module(module), name)
    return found


def tokenised_prompts(
    config: ExperimentConfig, backend: BackendAdapter, *, offline: bool
) -> PromptSet:
    """The whole prompt set, each prompt at most max_input_tokens long."""
    return builder_of(config.prompts)(config, config.prompts, backend, offline)


def synthetic_prompts(
    config: ExperimentConfig, source: SyntheticPrompts, backend: BackendAdapter, offline: bool
) -> PromptSet:
    words = _Words(backend, source.seed + 1)
    lengths = source.input_lengths(config.n_prompts, config.max_input_tokens)
    return PromptSet([words.ids(n) for n in lengths])


def shared_prefix_prompts(
    config: ExperimentConfig, source: SharedPrefixPrompts, backend: BackendAdapter, offline: bool
) -> PromptSet:
    """Prompt k: its group's prefix (k mod groups), then a suffix of its own."""
    words = _Words(backend, source.seed + 1)
    prefixes = [words.ids(source.prefix_tokens) for _ in range(source.groups)]
    suffixes = draw_lengths(source.input_length, config.n_prompts, random.Random(source.seed))
    return PromptSet([prefixes[k % source.groups] + words.ids(n) for k, n in enumerate(suffixes)])


def file_prompts(
    config: ExperimentConfig, source: PromptFileSource, backend: BackendAdapter, offline: bool
) -> PromptSet:
    """A file's texts or conversations, tokenised."""
    return _text_set(config, source.path, _file_requests(source, config.n_prompts), backend)


def trace_prompts(
    config: ExperimentConfig, source: TracePrompts, backend: BackendAdapter, offline: bool
) -> PromptSet:
    """A trace's rows: synthetic prompts of their input tokens, their output tokens and
    arrivals."""
    requests = _file_requests(source, config.n_prompts)
    words = _Words(backend, source.seed + 1)
    return PromptSet(
        ids=[words.ids(min(r.input_tokens or 1, config.max_input_tokens)) for r in requests],
        output_tokens=[r.output_tokens for r in requests],
        arrivals_s=[r.arrival_s or 0.0 for r in requests],
    )


def dataset_prompts(
    config: ExperimentConfig, source: HFDatasetPrompts, backend: BackendAdapter, offline: bool
) -> PromptSet:
    """A dataset's texts, tokenised."""
    requests = _dataset_requests(source, config.n_prompts, offline)
    return _text_set(config, source.name, requests, backend)


def _file_requests(source: PromptFileSource, n: int) -> list[FileRequest]:
    try:
        return read_requests(source, n)
    except PromptFileError as exc:
        raise PromptError(str(exc)) from exc


def _dataset_requests(source: HFDatasetPrompts, n: int, offline: bool) -> list[FileRequest]:
    try:
        import datasets
    except ImportError as exc:
        raise PromptError(
            "prompts.source hf_dataset needs the 'datasets' package (extra: datasets), "
            "which this image lacks; use a jsonl file instead"
        ) from exc
    if offline:
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    data = datasets.load_dataset(source.name, source.config_name, split=source.split)
    wanted = [source.field] + ([source.output_length_field] if source.output_length_field else [])
    missing = [name for name in wanted if name not in data.column_names]
    if missing:
        raise PromptError(
            f"dataset {source.name} has no field '{missing[0]}'; it has {data.column_names}"
        )
    if len(data) < n:
        raise PromptError(f"dataset {source.name} has {len(data)} rows but n_prompts is {n}")
    rows = data.select(range(n))
    texts = [str(text) for text in rows[source.field]]
    if not source.output_length_field:
        return [FileRequest(text=text) for text in texts]
    lengths = rows[source.output_length_field]
    return [
        FileRequest(text=t, output_tokens=v)
        if isinstance(v, int)
        else FileRequest(text=t, answer=str(v))
        for t, v in zip(texts, lengths, strict=True)
    ]


def _answer_tokens(request: FileRequest, backend: BackendAdapter) -> int | None:
    if request.output_tokens is not None:
        return request.output_tokens
    if request.answer is None:
        return None
    return max(1, len(backend.encode(request.answer, add_special_tokens=False)))


def _text_set(
    config: ExperimentConfig, where: str, requests: list[FileRequest], backend: BackendAdapter
) -> PromptSet:
    """Each request's text (cut at max_input_tokens) or conversation (with the chat template,
    refused above max_input_tokens) as token ids; `where` names the source in messages."""
    special = backend.special_token_ids()
    ids_of: list[list[int]] = []
    texts: list[str | None] = []
    for k, request in enumerate(requests):
        if request.messages is not None:
            ids = backend.encode_chat(request.messages)
            if len(ids) > config.max_input_tokens:
                raise PromptError(
                    f"{where}: record {k + 1}: the conversation is "
                    f"{len(ids)} tokens with the chat template, above max_input_tokens "
                    f"({config.max_input_tokens}); raise it or shorten the conversation"
                )
            texts.append(None)
        else:
            assert request.text is not None
            whole = backend.encode(request.text)
            ids = whole[: config.max_input_tokens]
            cut = len(ids) < len(whole)  # a chat request then sends the kept part's text
            texts.append(
                backend.decode([t for t in ids if t not in special]) if cut else request.text
            )
        if not ids:
            raise PromptError(f"prompt {k} tokenises to nothing")
        ids_of.append(ids)
    return PromptSet(
        ids=ids_of,
        texts=texts,
        messages=[r.messages for r in requests],
        output_tokens=[_answer_tokens(r, backend) for r in requests],
    )
