"""Where a run's prompts come from (`prompts:`): one model per source, and the table of them.

Synthetic sources (`synthetic`, `shared_prefix`) are exact in the model's tokens; file sources
are text, tokenised by the model's tokenizer with the real counts recorded. A file source's
`path` is on the host (absolute or relative to the study file): the host mounts it read-only
into the container and names the in-container path in config.json.

Whatever a reader needs to know of a source, it asks the source, never which class it is:

- `prompt_file` (the host file the host reads at plan time, through the source's `read_file`,
  and mounts) or `dataset` (a hub dataset, or a local one the host mounts);
- `serving_only`, `chat_only`, `gives_arrivals`: what it asks of the mode and the load (the
  rules are `workload.py`'s);
- `gives_output_lengths`, `output_length_key`: per-request output lengths;
- `longest_input_tokens`, `synthetic_span`: its length model before any tokenizer runs;
- `builder`: the container's code that makes its prompt set ("module:function" in
  `experiment/prompts.py`, imported only there, as a backend names its adapter: tokenising
  needs the model's tokenizer, which the contract must not import).

`PROMPT_SOURCES` lists the sources, one row each; the `prompts:` union is made from it and every
row is checked at import. A new source is its class and its row here, and a builder only where
no existing one fits (a file of text or conversations fits `file_prompts`).
"""

from __future__ import annotations

import random
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field

from llenergymeasure.contract.fields import PositiveInt, Strict
from llenergymeasure.contract.prompt_files import (
    FileRequest,
    chat_requests,
    jsonl_requests,
    sharegpt_requests,
    trace_requests,
)
from llenergymeasure.contract.prompt_lengths import (
    MAX_PROMPTS,
    MAX_TOKENS,
    FixedLength,
    InputLength,
)

HOST_PATH = (
    "On the host: absolute or relative to the study file; mounted read-only into the container."
)
_BUILDERS = "llenergymeasure.experiment.prompts"


class PromptSourceBase(Strict):
    """What every source answers; a source's class overrides what differs for it."""

    source: str
    # "module:function" of the container's code that makes this source's prompt set
    builder: ClassVar[str]
    serving_only: ClassVar[bool] = False  # a serving load: needs mode: serving
    chat_only: ClassVar[bool] = False  # conversations: needs serving.endpoint: chat
    gives_arrivals: ClassVar[bool] = False  # each request's send time: no arrival process too

    @classmethod
    def kind(cls) -> str:
        """The `source:` value that names this source."""
        (tag,) = typing.get_args(cls.model_fields["source"].annotation)
        return str(tag)

    @property
    def prompt_file(self) -> str | None:
        """The host file (`prompts.path`) read at plan time and mounted read-only; None: none."""
        return None

    @property
    def dataset(self) -> str | None:
        """A dataset (`prompts.name`): a hub id, or a local path mounted read-only; None: none."""
        return None

    @property
    def gives_output_lengths(self) -> bool:
        """Whether each request brings its own output length (`output_length: from_dataset`)."""
        return False

    @property
    def output_length_key(self) -> str | None:
        """The key of this source, when set, that asks for per-request output lengths (which
        only a serving run uses); None: none."""
        return None

    def longest_input_tokens(self, n_prompts: int, max_input_tokens: int) -> tuple[int, bool]:
        """(the longest prompt in tokens, whether exact) before tokenisation: a source whose
        text a tokenizer measures is only bounded, by the truncation."""
        return max_input_tokens, False

    def synthetic_span(self) -> tuple[int, int] | None:
        """(shared prefix tokens, the longest drawn length) of synthetic prompts whose length
        model is bounded, checked against max_input_tokens; None: nothing to check."""
        return None


class SyntheticPrompts(PromptSourceBase):
    """Seeded prompts made exact in tokens of the model's own tokenizer."""

    builder: ClassVar[str] = f"{_BUILDERS}:synthetic_prompts"

    source: Literal["synthetic"] = "synthetic"
    seed: int = 0
    input_length: InputLength = Field(default_factory=FixedLength)

    def input_lengths(self, n_prompts: int, max_input_tokens: int) -> list[int]:
        """Seeded draws of each prompt's length in tokens, at most max_input_tokens: what the
        container builds (independent of the backend)."""
        return self.input_length.draws(n_prompts, random.Random(self.seed), max_input_tokens)

    def longest_input_tokens(self, n_prompts: int, max_input_tokens: int) -> tuple[int, bool]:
        # the draws of input_lengths: one seed, capped at max_input_tokens
        rng = random.Random(self.seed)
        return self.input_length.longest_draw(n_prompts, rng, max_input_tokens), True

    def synthetic_span(self) -> tuple[int, int] | None:
        longest = self.input_length.longest
        return None if longest is None else (0, longest)


class SharedPrefixPrompts(PromptSourceBase):
    """Synthetic prompts in `groups` groups: every prompt of a group starts with the same
    `prefix_tokens` tokens, then a suffix of its own of `input_length` tokens (what prefix
    caching changes). Prompt k belongs to group k mod groups."""

    builder: ClassVar[str] = f"{_BUILDERS}:shared_prefix_prompts"

    source: Literal["shared_prefix"]
    prefix_tokens: PositiveInt = Field(
        le=MAX_TOKENS,
        description=f"Tokens every prompt of a group shares (at most {MAX_TOKENS:,}).",
    )
    groups: PositiveInt = Field(
        1, le=MAX_PROMPTS, description=f"How many distinct prefixes (at most {MAX_PROMPTS:,})."
    )
    seed: int = 0
    input_length: InputLength = Field(
        default_factory=FixedLength, description="The suffix after the prefix, in tokens."
    )

    def longest_input_tokens(self, n_prompts: int, max_input_tokens: int) -> tuple[int, bool]:
        # the suffixes' draws of experiment/prompts.shared_prefix_prompts
        longest = self.input_length.longest_draw(n_prompts, random.Random(self.seed), None)
        return self.prefix_tokens + longest, True

    def synthetic_span(self) -> tuple[int, int] | None:
        longest = self.input_length.longest
        return None if longest is None else (self.prefix_tokens, longest)


class PromptFileSource(PromptSourceBase):
    """A source read from one file on the host, `path`: checked at plan time by reading it
    (`prompt_files.read_requests`, which calls `read_file`), read again in the container."""

    builder: ClassVar[str] = f"{_BUILDERS}:file_prompts"

    path: str = Field(min_length=1, description=HOST_PATH)

    @property
    def prompt_file(self) -> str:
        return self.path

    def read_file(self, path: Path, count: int) -> list[FileRequest]:
        """The first `count` requests of the file at `path` (at most: fewer where it has fewer);
        PromptFileError naming the record for a file not of this source's format."""
        raise NotImplementedError


class OutputLengthField(Strict):
    """A source whose records may carry each request's output length (`output_length_field`)."""

    output_length_field: str | None = Field(
        None,
        description="A field holding the request's output length: a token count, or the "
        "reference answer's text (its length in the model's tokens).",
    )

    @property
    def gives_output_lengths(self) -> bool:
        return bool(self.output_length_field)

    @property
    def output_length_key(self) -> str | None:
        return "output_length_field" if self.output_length_field else None


class JsonlPrompts(OutputLengthField, PromptFileSource):
    """One JSON object per line; `field` holds the prompt text."""

    source: Literal["jsonl"]
    field: str = "prompt"

    def read_file(self, path: Path, count: int) -> list[FileRequest]:
        return jsonl_requests(path, count, self.field, self.output_length_field)


class HFDatasetPrompts(OutputLengthField, PromptSourceBase):
    """A Hugging Face dataset: a hub name, or a local path (a folder of data files or a saved
    dataset; absolute or relative to the study file, mounted read-only into the container)."""

    builder: ClassVar[str] = f"{_BUILDERS}:dataset_prompts"

    source: Literal["hf_dataset"]
    name: str = Field(min_length=1)
    config_name: str | None = None
    split: str = "train"
    field: str = "text"

    @property
    def dataset(self) -> str:
        return self.name


class SharegptPrompts(PromptFileSource):
    """A ShareGPT-format JSON file (a list of `{conversations: [{from, value}, ...]}`): the
    first turn is the prompt, the second (the first answer) gives the output length in the
    model's tokens. Records with fewer than two turns are skipped, as `vllm bench` does."""

    source: Literal["sharegpt"]

    @property
    def gives_output_lengths(self) -> bool:
        return True

    def read_file(self, path: Path, count: int) -> list[FileRequest]:
        return sharegpt_requests(path, count)


class ChatJsonlPrompts(PromptFileSource):
    """OpenAI-chat JSONL: each line holds `messages` (`{role, content}` ...). Messages after
    the last user message are the reference answer (its length in the model's tokens is the
    output length); the rest is the conversation sent."""

    serving_only: ClassVar[bool] = True
    chat_only: ClassVar[bool] = True

    source: Literal["chat_jsonl"]
    field: str = "messages"

    @property
    def gives_output_lengths(self) -> bool:
        return True

    def read_file(self, path: Path, count: int) -> list[FileRequest]:
        return chat_requests(path, count, self.field)


class TracePrompts(PromptFileSource):
    """A request trace, CSV or JSONL (by the file's suffix): per row an arrival time, input and
    output tokens. Defaults are the column names of the public Azure LLM inference traces.
    Rows are replayed in order at their arrival times (relative to the first, multiplied by
    `time_scale`), each with a synthetic prompt of exactly its input tokens."""

    builder: ClassVar[str] = f"{_BUILDERS}:trace_prompts"
    serving_only: ClassVar[bool] = True
    gives_arrivals: ClassVar[bool] = True

    source: Literal["trace"]
    time_scale: float = Field(
        1.0, gt=0, description="Arrival offsets are multiplied by this (0.5: twice as fast)."
    )
    timestamp_column: str = Field(
        "TIMESTAMP", description="Seconds (a number) or an ISO date-time, non-decreasing."
    )
    input_column: str = "ContextTokens"
    output_column: str = "GeneratedTokens"
    seed: int = Field(0, description="Seeds the synthetic prompt text.")

    @property
    def gives_output_lengths(self) -> bool:
        return True

    def read_file(self, path: Path, count: int) -> list[FileRequest]:
        columns = (self.timestamp_column, self.input_column, self.output_column)
        return trace_requests(path, count, columns, self.time_scale)


def source_table(*models: type[PromptSourceBase]) -> dict[str, type[PromptSourceBase]]:
    """The sources by their `source:` value, each row checked: a literal tag, a builder in the
    container's prompt code, and a file source that says how its file is read."""
    table: dict[str, type[PromptSourceBase]] = {}
    for model in models:
        kind = model.kind()
        if kind in table:
            raise TypeError(f"prompt source {kind!r} is listed twice")
        module, _, function = model.builder.partition(":")
        if module != _BUILDERS or not function.isidentifier():
            raise TypeError(f"prompt source {kind!r}: its builder is not a function of {_BUILDERS}")
        if issubclass(model, PromptFileSource) and model.read_file is PromptFileSource.read_file:
            raise TypeError(f"prompt source {kind!r} reads a file but has no read_file")
        table[kind] = model
    return table


PROMPT_SOURCES = source_table(
    SyntheticPrompts,
    SharedPrefixPrompts,
    JsonlPrompts,
    HFDatasetPrompts,
    SharegptPrompts,
    ChatJsonlPrompts,
    TracePrompts,
)

# Readers see the base (they ask it; they never narrow it); pydantic sees the union of the rows.
if TYPE_CHECKING:
    PromptSource = PromptSourceBase
else:
    PromptSource = Annotated[
        typing.Union[tuple(PROMPT_SOURCES.values())],  # noqa: UP007 - a union made at run time
        Field(discriminator="source"),
    ]
