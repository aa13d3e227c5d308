"""Where a run's prompts come from (`prompts:`), and the length models of synthetic ones.

Synthetic sources (`synthetic`, `shared_prefix`) are exact in the model's tokens; file sources
are text, tokenised by the model's tokenizer with the real counts recorded. A file source's
`path` is on the host (absolute or relative to the study file): the host mounts it read-only
into the container and names the in-container path in config.json.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from llenergymeasure.contract.fields import CombinationError, NonNegativeFloat, PositiveInt, Strict

HOST_PATH = (
    "On the host: absolute or relative to the study file; mounted read-only into the container."
)


class FixedLength(Strict):
    distribution: Literal["fixed"] = "fixed"
    tokens: PositiveInt = Field(128, description="Length of every prompt (or output), in tokens.")


class UniformLength(Strict):
    distribution: Literal["uniform"]
    min: PositiveInt = Field(description="Shortest, in tokens.")
    max: PositiveInt = Field(description="Longest, in tokens.")

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.min > self.max:
            raise CombinationError(
                f"min ({self.min}) must not exceed max ({self.max})", "min", "max"
            )
        return self


class NormalLength(Strict):
    distribution: Literal["normal"]
    mean: PositiveInt = Field(description="Mean length, in tokens.")
    std: NonNegativeFloat = Field(description="Standard deviation, in tokens.")
    min: PositiveInt = Field(1, description="Draws are clipped to at least this, in tokens.")
    max: PositiveInt | None = Field(None, description="Draws are clipped to at most this.")

    @model_validator(mode="after")
    def _ordered(self) -> NormalLength:
        if self.max is not None and self.min > self.max:
            raise CombinationError(
                f"min ({self.min}) must not exceed max ({self.max})", "min", "max"
            )
        return self


InputLength = Annotated[
    FixedLength | UniformLength | NormalLength, Field(discriminator="distribution")
]


class SyntheticPrompts(Strict):
    """Seeded prompts made exact in tokens of the model's own tokenizer."""

    source: Literal["synthetic"] = "synthetic"
    seed: int = 0
    input_length: InputLength = Field(default_factory=FixedLength)


class SharedPrefixPrompts(Strict):
    """Synthetic prompts in `groups` groups: every prompt of a group starts with the same
    `prefix_tokens` tokens, then a suffix of its own of `input_length` tokens (what prefix
    caching changes). Prompt k belongs to group k mod groups."""

    source: Literal["shared_prefix"]
    prefix_tokens: PositiveInt = Field(description="Tokens every prompt of a group shares.")
    groups: PositiveInt = Field(1, description="How many distinct prefixes.")
    seed: int = 0
    input_length: InputLength = Field(
        default_factory=FixedLength, description="The suffix after the prefix, in tokens."
    )


class JsonlPrompts(Strict):
    """One JSON object per line; `field` holds the prompt text."""

    source: Literal["jsonl"]
    path: str = Field(min_length=1, description=HOST_PATH)
    field: str = "prompt"
    output_length_field: str | None = Field(
        None,
        description="A field holding the request's output length: a token count, or the "
        "reference answer's text (its length in the model's tokens).",
    )


class HFDatasetPrompts(Strict):
    """A Hugging Face dataset: a hub name, or a local path (a folder of data files or a saved
    dataset; absolute or relative to the study file, mounted read-only into the container)."""

    source: Literal["hf_dataset"]
    name: str = Field(min_length=1)
    config_name: str | None = None
    split: str = "train"
    field: str = "text"
    output_length_field: str | None = Field(
        None, description="As for jsonl: a token count or a reference answer's text."
    )


class SharegptPrompts(Strict):
    """A ShareGPT-format JSON file (a list of `{conversations: [{from, value}, ...]}`): the
    first turn is the prompt, the second (the first answer) gives the output length in the
    model's tokens. Records with fewer than two turns are skipped, as `vllm bench` does."""

    source: Literal["sharegpt"]
    path: str = Field(min_length=1, description=HOST_PATH)


class ChatJsonlPrompts(Strict):
    """OpenAI-chat JSONL: each line holds `messages` (`{role, content}` ...). Messages after
    the last user message are the reference answer (its length in the model's tokens is the
    output length); the rest is the conversation sent."""

    source: Literal["chat_jsonl"]
    path: str = Field(min_length=1, description=HOST_PATH)
    field: str = "messages"


class TracePrompts(Strict):
    """A request trace, CSV or JSONL (by the file's suffix): per row an arrival time, input and
    output tokens. Defaults are the column names of the public Azure LLM inference traces.
    Rows are replayed in order at their arrival times (relative to the first, multiplied by
    `time_scale`), each with a synthetic prompt of exactly its input tokens."""

    source: Literal["trace"]
    path: str = Field(min_length=1, description=HOST_PATH)
    time_scale: float = Field(
        1.0, gt=0, description="Arrival offsets are multiplied by this (0.5: twice as fast)."
    )
    timestamp_column: str = Field(
        "TIMESTAMP", description="Seconds (a number) or an ISO date-time, non-decreasing."
    )
    input_column: str = "ContextTokens"
    output_column: str = "GeneratedTokens"
    seed: int = Field(0, description="Seeds the synthetic prompt text.")


PromptSource = Annotated[
    SyntheticPrompts
    | SharedPrefixPrompts
    | JsonlPrompts
    | HFDatasetPrompts
    | SharegptPrompts
    | ChatJsonlPrompts
    | TracePrompts,
    Field(discriminator="source"),
]

# Sources whose `path` is a host file the host checks and mounts.
FILE_SOURCES = (JsonlPrompts, SharegptPrompts, ChatJsonlPrompts, TracePrompts)
# Sources that give each request its own output length.
SOURCES_WITH_OUTPUT_LENGTHS = (SharegptPrompts, ChatJsonlPrompts, TracePrompts)


def gives_output_lengths(source: object) -> bool:
    if isinstance(source, SOURCES_WITH_OUTPUT_LENGTHS):
        return True
    return isinstance(source, JsonlPrompts | HFDatasetPrompts) and bool(source.output_length_field)
