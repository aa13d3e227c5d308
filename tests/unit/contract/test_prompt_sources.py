"""The prompt sources are one table: each row is the source's class, which answers what readers
ask of it; the `prompts:` union, the README and the bounds on lengths and counts follow it."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import ValidationError

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.prompt_lengths import MAX_PROMPTS, MAX_TOKENS
from llenergymeasure.contract.prompt_sources import (
    PROMPT_SOURCES,
    PromptFileSource,
    PromptSourceBase,
    source_table,
)

README = Path(__file__).parents[3] / "README.md"

# kind -> (a minimal `prompts:` mapping, its host file, its dataset, serving only, chat only,
# gives arrivals, gives output lengths)
FACTS: dict[str, tuple[dict[str, Any], str | None, str | None, bool, bool, bool, bool]] = {
    "synthetic": ({}, None, None, False, False, False, False),
    "shared_prefix": ({"prefix_tokens": 8}, None, None, False, False, False, False),
    "jsonl": ({"path": "p.jsonl"}, "p.jsonl", None, False, False, False, False),
    "hf_dataset": ({"name": "org/set"}, None, "org/set", False, False, False, False),
    "sharegpt": ({"path": "s.json"}, "s.json", None, False, False, False, True),
    "chat_jsonl": ({"path": "c.jsonl"}, "c.jsonl", None, True, True, False, True),
    "trace": ({"path": "t.csv"}, "t.csv", None, True, False, True, True),
}


def test_the_table_is_the_union_of_prompts() -> None:
    union = ExperimentConfig.model_fields["prompts"].annotation
    assert set(typing.get_args(union)) == set(PROMPT_SOURCES.values())
    assert all(model.kind() == kind for kind, model in PROMPT_SOURCES.items())
    assert set(FACTS) == set(PROMPT_SOURCES)


@pytest.mark.parametrize("kind", sorted(FACTS))
def test_each_source_answers_for_itself(kind: str) -> None:
    given, prompt_file, dataset, serving_only, chat_only, arrivals, lengths = FACTS[kind]
    source = PROMPT_SOURCES[kind].model_validate({"source": kind, **given})
    assert (source.prompt_file, source.dataset) == (prompt_file, dataset)
    assert (source.serving_only, source.chat_only, source.gives_arrivals) == (
        serving_only,
        chat_only,
        arrivals,
    )
    assert source.gives_output_lengths is lengths
    assert source.output_length_key is None
    exact = kind in ("synthetic", "shared_prefix")
    assert source.longest_input_tokens(10, 4096)[1] is exact
    assert (source.synthetic_span() is not None) is exact


@pytest.mark.parametrize("kind", ["jsonl", "hf_dataset"])
def test_an_output_length_field_gives_output_lengths(kind: str) -> None:
    given = FACTS[kind][0]
    source = PROMPT_SOURCES[kind].model_validate(
        {"source": kind, **given, "output_length_field": "answer"}
    )
    assert source.gives_output_lengths
    assert source.output_length_key == "output_length_field"


def test_a_row_is_checked_when_the_table_is_made() -> None:
    class NoReader(PromptFileSource):
        source: Literal["no_reader"]

    class NoBuilder(PromptSourceBase):
        builder: ClassVar[str] = "somewhere.else:build"
        source: Literal["no_builder"]

    with pytest.raises(TypeError, match="'no_reader' reads a file but has no read_file"):
        source_table(NoReader)
    with pytest.raises(TypeError, match="'no_builder': its builder is not a function of"):
        source_table(NoBuilder)
    with pytest.raises(TypeError, match="'trace' is listed twice"):
        source_table(*PROMPT_SOURCES.values(), PROMPT_SOURCES["trace"])


def test_the_readme_lists_every_source_with_its_keys() -> None:
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `prompts`"))
    for kind, model in PROMPT_SOURCES.items():
        found = re.search(r"\{source: " + kind + r"\b([^`]*)\}`", row)
        assert found, f"README's prompts row lacks {kind}"
        missing = [key for key in model.model_fields if key != "source" and key not in found[1]]
        assert not missing, f"README's prompts row lacks {kind}'s {missing}"


BOUNDS = [
    ({"n_prompts": MAX_PROMPTS + 1}, "n_prompts"),
    ({"max_input_tokens": MAX_TOKENS + 1}, "max_input_tokens"),
    ({"max_new_tokens": MAX_TOKENS + 1}, "max_new_tokens"),
    (
        {
            "prompts": {
                "source": "synthetic",
                "input_length": {"distribution": "fixed", "tokens": MAX_TOKENS + 1},
            }
        },
        "prompts.synthetic.input_length.fixed.tokens",
    ),
    (
        {
            "prompts": {
                "source": "synthetic",
                "input_length": {"distribution": "uniform", "min": 1, "max": 10**12},
            }
        },
        "prompts.synthetic.input_length.uniform.max",
    ),
    (
        {
            "prompts": {
                "source": "synthetic",
                "input_length": {"distribution": "normal", "mean": 9, "std": 1e300},
            }
        },
        "prompts.synthetic.input_length.normal.std",
    ),
    (
        {"prompts": {"source": "shared_prefix", "prefix_tokens": 8, "groups": 10**9}},
        "prompts.shared_prefix.groups",
    ),
    (
        {"prompts": {"source": "shared_prefix", "prefix_tokens": 10**9}},
        "prompts.shared_prefix.prefix_tokens",
    ),
]


@pytest.mark.parametrize(("fields", "key"), BOUNDS)
def test_counts_and_token_lengths_are_bounded(fields: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ExperimentConfig(model="m", **fields)
    (error,) = raised.value.errors()
    assert ".".join(map(str, error["loc"])) == key
    assert error["type"] == "less_than_equal"


def test_the_bounds_themselves_are_allowed() -> None:
    config = ExperimentConfig(
        model="m",
        n_prompts=MAX_PROMPTS,
        max_input_tokens=MAX_TOKENS,
        max_new_tokens=MAX_TOKENS,
        prompts={
            "source": "synthetic",
            "input_length": {"distribution": "fixed", "tokens": MAX_TOKENS},
        },
    )
    assert config.prompts.longest_input_tokens(1, MAX_TOKENS) == (MAX_TOKENS, True)
