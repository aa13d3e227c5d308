"""How long a run's prompts are, in tokens, known before any tokenizer runs.

Synthetic prompts are cut to seeded, drawn lengths, so both halves compute them exactly: the
container to build the prompts, the host to know at plan time what context a run needs. A file
or dataset source is only bounded, by `max_input_tokens` (truncation), until it is tokenised.
"""

from __future__ import annotations

import random

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.prompt_sources import (
    FixedLength,
    InputLength,
    NormalLength,
    SharedPrefixPrompts,
    SyntheticPrompts,
    UniformLength,
)


def input_lengths(config: ExperimentConfig, source: SyntheticPrompts) -> list[int]:
    """Seeded draws of each synthetic prompt's length in tokens; independent of the backend."""
    return draw_lengths(
        source.input_length, config.n_prompts, random.Random(source.seed), config.max_input_tokens
    )


def draw_lengths(
    spec: InputLength, count: int, rng: random.Random, cap: int | None = None
) -> list[int]:
    """`count` seeded draws of a length model, in tokens, each at most `cap` (and at most the
    model's own max)."""
    lengths: list[int] = []
    for _ in range(count):
        if isinstance(spec, FixedLength):
            n = spec.tokens
        elif isinstance(spec, UniformLength):
            n = rng.randint(spec.min, spec.max)
        else:
            assert isinstance(spec, NormalLength)
            upper = spec.max if spec.max is not None else cap
            n = max(spec.min, round(rng.gauss(spec.mean, spec.std)))
            n = n if upper is None else min(upper, n)
        lengths.append(n if cap is None else min(n, cap))
    return lengths


def longest_input_tokens(config: ExperimentConfig) -> tuple[int, bool]:
    """(the longest prompt in tokens, whether that is exact) before tokenisation.

    Exact for synthetic prompts; for a file, a trace or a dataset, `max_input_tokens`, an upper
    bound.
    """
    source = config.prompts
    if isinstance(source, SharedPrefixPrompts):
        suffixes = draw_lengths(source.input_length, config.n_prompts, random.Random(source.seed))
        return source.prefix_tokens + max(suffixes), True
    if not isinstance(source, SyntheticPrompts):
        return config.max_input_tokens, False
    if isinstance(source.input_length, FixedLength):
        return min(source.input_length.tokens, config.max_input_tokens), True
    return max(input_lengths(config, source)), True
