"""How long a run's prompts and outputs are, in tokens: the length models, their bounds, and
what is known before any tokenizer runs.

Synthetic prompts are cut to seeded, drawn lengths, so both halves compute them exactly: the
container to build the prompts, the host to know at plan time what context a run needs. A file
or dataset source is only bounded, by `max_input_tokens` (truncation), until it is tokenised;
each source's class says which it is (`PromptSourceBase.longest_input_tokens`).

Every token length a config gives is at most `MAX_TOKENS` and a run has at most `MAX_PROMPTS`
prompts: far beyond any model's context and any study, low enough that a typo is a validation
error naming its key instead of a container allocating terabytes.
"""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import Field, model_validator

from llenergymeasure.contract.fields import CombinationError, Strict

MAX_TOKENS = 1 << 20  # 1,048,576
MAX_PROMPTS = 1_000_000
TokenCount = Annotated[int, Field(gt=0, le=MAX_TOKENS)]
AT_MOST = f"at most {MAX_TOKENS:,}"


class _LengthModel(Strict):
    """A seeded distribution of lengths in tokens; `longest` is the most it gives (None:
    unbounded)."""

    def draws(self, count: int, rng: random.Random, cap: int | None) -> list[int]:
        """`count` seeded draws, each at most `cap` (and the model's own max)."""
        raise NotImplementedError

    def longest_draw(self, count: int, rng: random.Random, cap: int | None) -> int:
        """The longest of `count` draws (what a run's context must hold)."""
        return max(self.draws(count, rng, cap))


class FixedLength(_LengthModel):
    distribution: Literal["fixed"] = "fixed"
    tokens: TokenCount = Field(
        128, description=f"Length of every prompt (or output), in tokens ({AT_MOST})."
    )

    @property
    def longest(self) -> int:
        return self.tokens

    def draws(self, count: int, rng: random.Random, cap: int | None) -> list[int]:
        return [self.longest_draw(count, rng, cap)] * count

    def longest_draw(self, count: int, rng: random.Random, cap: int | None) -> int:
        return self.tokens if cap is None else min(self.tokens, cap)


class UniformLength(_LengthModel):
    distribution: Literal["uniform"]
    min: TokenCount = Field(description=f"Shortest, in tokens ({AT_MOST}).")
    max: TokenCount = Field(description=f"Longest, in tokens ({AT_MOST}).")

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.min > self.max:
            raise CombinationError(
                f"min ({self.min}) must not exceed max ({self.max})", "min", "max"
            )
        return self

    @property
    def longest(self) -> int:
        return self.max

    def draws(self, count: int, rng: random.Random, cap: int | None) -> list[int]:
        drawn = [rng.randint(self.min, self.max) for _ in range(count)]
        return drawn if cap is None else [min(n, cap) for n in drawn]


class NormalLength(_LengthModel):
    distribution: Literal["normal"]
    mean: TokenCount = Field(description=f"Mean length, in tokens ({AT_MOST}).")
    std: float = Field(
        ge=0, le=MAX_TOKENS, description=f"Standard deviation, in tokens ({AT_MOST})."
    )
    min: TokenCount = Field(1, description="Draws are clipped to at least this, in tokens.")
    max: TokenCount | None = Field(None, description="Draws are clipped to at most this.")

    @model_validator(mode="after")
    def _ordered(self) -> NormalLength:
        if self.max is not None and self.min > self.max:
            raise CombinationError(
                f"min ({self.min}) must not exceed max ({self.max})", "min", "max"
            )
        return self

    @property
    def longest(self) -> int | None:
        return self.max

    def draws(self, count: int, rng: random.Random, cap: int | None) -> list[int]:
        upper = self.max if self.max is not None else cap
        drawn = []
        for _ in range(count):
            n = max(self.min, round(rng.gauss(self.mean, self.std)))
            n = n if upper is None else min(upper, n)
            drawn.append(n if cap is None else min(n, cap))
        return drawn


InputLength = Annotated[
    FixedLength | UniformLength | NormalLength, Field(discriminator="distribution")
]


def draw_lengths(
    spec: InputLength, count: int, rng: random.Random, cap: int | None = None
) -> list[int]:
    """`count` seeded draws of a length model, in tokens, each at most `cap` (and at most the
    model's own max)."""
    return spec.draws(count, rng, cap)
