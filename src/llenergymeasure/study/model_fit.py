"""Plan-time check that a configuration fits its model's context, where the model is readable.

A run needs `longest prompt + max_new_tokens` tokens of context. Synthetic prompt lengths are
known exactly before tokenisation (`contract.prompt_lengths`); a file's prompts are only known
once tokenised in the container, so they are not judged here. The model's context is read from a
local model folder's `config.json` the way vLLM derives its maximum length: the smallest of the
length keys present, scaled by a RoPE scaling factor except for the types that already include
it. A hub id is not read (plan time has no network): its runs are judged inside the container.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.nesting import load_json
from llenergymeasure.study.paths import host_path

CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# RoPE scaling types whose max_position_embeddings already is the scaled length.
_UNSCALED_ROPE = frozenset({"su", "longrope", "llama3"})


def context_from_config(config: dict[str, Any]) -> tuple[int, str] | None:
    """(context length in tokens, the key it came from) of a Hugging Face config, or None."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    found = [(text[key], key) for key in CONTEXT_KEYS if isinstance(text.get(key), int)]
    if not found:
        return None
    length, key = min(found)
    scaling = text.get("rope_scaling")
    if isinstance(scaling, dict) and isinstance(scaling.get("factor"), int | float):
        kind = scaling.get("rope_type") or scaling.get("type")
        if kind not in _UNSCALED_ROPE:
            if kind == "yarn" and isinstance(scaling.get("original_max_position_embeddings"), int):
                length = scaling["original_max_position_embeddings"]
            length = int(length * scaling["factor"])
            key = f"{key} x rope_scaling.factor {scaling['factor']}"
    return length, key


@lru_cache(maxsize=256)
def _folder_context(folder: Path) -> tuple[int, str] | None:
    try:  # a folder's config.json nested too deep is a NestingError (a ValueError): unknown
        data = load_json((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return context_from_config(data) if isinstance(data, dict) else None


@lru_cache(maxsize=256)
def _model_folder(model: str, inputs_dir: Path) -> Path | None:
    folder = host_path(model, inputs_dir)
    return folder if folder.is_dir() else None


def fit_problem(config: ExperimentConfig, inputs_dir: Path | None) -> str | None:
    """Why `config` cannot run on its model's context or its vLLM length; None when it can
    (or when that cannot be known before the run)."""
    section = config.vllm
    fixed_len = section.max_model_len if section is not None else None
    folder = _model_folder(config.model, inputs_dir) if inputs_dir is not None else None
    context = _folder_context(folder) if folder is not None else None
    if fixed_len is None and context is None:
        return None  # nothing to judge against (the common case: keep it cheap)
    longest, exact = config.prompts.longest_input_tokens(config.n_prompts, config.max_input_tokens)
    needed = longest + config.max_new_tokens
    need = (
        f"longest prompt {longest} + max_new_tokens {config.max_new_tokens}"
        if exact
        else f"max_input_tokens {longest} + max_new_tokens {config.max_new_tokens}"
    )
    if fixed_len is not None and fixed_len < needed:
        return f"vllm.max_model_len ({fixed_len}) is shorter than {need} = {needed}"
    if context is None:
        return None
    length, key = context
    assert folder is not None
    source = f"{key} in {folder / 'config.json'}"
    if fixed_len is not None and fixed_len > length:
        return f"vllm.max_model_len ({fixed_len}) exceeds the model's context ({length}, {source})"
    if exact and needed > length:
        return (
            f"the run needs {needed} tokens of context ({need}) but the model has {length} "
            f"({source})"
        )
    return None
