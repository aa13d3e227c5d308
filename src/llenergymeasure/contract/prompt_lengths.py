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
    NormalLength,
    SyntheticPrompts,
    UniformLength,
)


def input_lengths(config: ExperimentConfig, source: SyntheticPrompts) -> list[int]:
    """Seeded draws of each synthetic prompt's length in tokens; independent of the backend."""
    rng = random.Random(source.seed)
    spec = source.input_length
    lengths: list[int] = []
    for _ in range(config.n_prompts):
        if isinstance(spec, FixedLength):
            n = spec.tokens
        elif isinstance(spec, UniformLength):
            n = rng.randint(spec.min, spec.max)
        else:
            assert isinstance(spec, NormalLength)
            upper = spec.max if spec.max is not None else config.max_input_tokens
            n = min(upper, max(spec.min, round(rng.gauss(spec.mean, spec.std))))
        lengths.append(min(n, config.max_input_tokens))
    return lengths


def longest_input_tokens(config: ExperimentConfig) -> tuple[int, bool]:
    """(the longest prompt in tokens, whether that is exact) before tokenisation.

    Exact for synthetic prompts; for a file or dataset, `max_input_tokens`, an upper bound.
    """
    source = config.prompts
    if not isinstance(source, SyntheticPrompts):
        return config.max_input_tokens, False
    if isinstance(source.input_length, FixedLength):
        return min(source.input_length.tokens, config.max_input_tokens), True
    return max(input_lengths(config, source)), True
