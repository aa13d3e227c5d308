"""The prompt set: synthetic (seeded, exact in the model's tokens), a JSONL file, or a dataset."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from llenergymeasure.backends.base import BackendAdapter
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.prompt_lengths import input_lengths
from llenergymeasure.contract.prompt_sources import HFDatasetPrompts, JsonlPrompts, SyntheticPrompts

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


def synthetic_ids(
    config: ExperimentConfig, source: SyntheticPrompts, backend: BackendAdapter
) -> list[list[int]]:
    """Seeded word sequences (the same text on every backend for a seed), each cut to exactly
    its drawn length in this model's tokens. Special tokens are never part of a prompt."""
    rng = random.Random(source.seed + 1)
    special = backend.special_token_ids()
    prompts = []
    for n in input_lengths(config, source):
        words: list[str] = []
        ids: list[int] = []
        while len(ids) < n:
            words.extend(rng.choice(_WORDS) for _ in range(n - len(ids) + 1))
            ids = [
                t
                for t in backend.encode(" ".join(words), add_special_tokens=False)
                if t not in special
            ]
        prompts.append(ids[:n])
    return prompts


def _jsonl_texts(source: JsonlPrompts, n: int) -> list[str]:
    path = Path(source.path)
    if not path.is_file():
        raise PromptError(f"prompt file {path} does not exist inside the container")
    texts: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or not isinstance(record.get(source.field), str):
                raise PromptError(f"{path}:{number}: no string field '{source.field}'")
            texts.append(record[source.field])
            if len(texts) == n:
                return texts
    raise PromptError(f"{path} has {len(texts)} prompts but n_prompts is {n}")


def _dataset_texts(source: HFDatasetPrompts, n: int, offline: bool) -> list[str]:
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
    if source.field not in data.column_names:
        raise PromptError(
            f"dataset {source.name} has no field '{source.field}'; it has {data.column_names}"
        )
    if len(data) < n:
        raise PromptError(f"dataset {source.name} has {len(data)} rows but n_prompts is {n}")
    return [str(text) for text in data.select(range(n))[source.field]]


def tokenised_prompts(
    config: ExperimentConfig, backend: BackendAdapter, *, offline: bool
) -> list[list[int]]:
    """The whole prompt set as token ids, each at most max_input_tokens long."""
    source = config.prompts
    if isinstance(source, SyntheticPrompts):
        return synthetic_ids(config, source, backend)
    if isinstance(source, JsonlPrompts):
        texts = _jsonl_texts(source, config.n_prompts)
    else:
        texts = _dataset_texts(source, config.n_prompts, offline)
    prompts = []
    for k, text in enumerate(texts):
        ids = backend.encode(text)[: config.max_input_tokens]
        if not ids:
            raise PromptError(f"prompt {k} tokenises to nothing")
        prompts.append(ids)
    return prompts
