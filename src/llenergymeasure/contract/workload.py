"""Rules between a run's prompt source, its mode and its serving load: which sources need
serving or the chat endpoint, how long each request's output is, when a load ends."""

from __future__ import annotations

from typing import Literal, Protocol

from llenergymeasure.contract.fields import CombinationError
from llenergymeasure.contract.prompt_sources import (
    ChatJsonlPrompts,
    FixedLength,
    HFDatasetPrompts,
    JsonlPrompts,
    PromptSource,
    SharedPrefixPrompts,
    SyntheticPrompts,
    TracePrompts,
    gives_output_lengths,
)
from llenergymeasure.contract.serving import ServingConfig


class _Experiment(Protocol):
    """What these rules read of an experiment config."""

    prompts: PromptSource
    mode: Literal["offline", "serving"]
    serving: ServingConfig | None
    n_prompts: int
    max_input_tokens: int
    max_new_tokens: int


# What a trace gives, so a serving section must not set it too.
TRACE_GIVES = ("request_rate", "arrival", "burstiness")


def check_workload(config: _Experiment) -> None:
    """Raise CombinationError for a source/mode/load that cannot go together; fill in the
    serving section's output length when it was left unset (the recorded config is the one
    that ran)."""
    _check_prompt_lengths(config)
    source = config.prompts
    if isinstance(source, TracePrompts | ChatJsonlPrompts) and config.mode != "serving":
        raise CombinationError(
            f"prompts.source {source.source} is a serving load: set mode: serving",
            "prompts.source",
            "mode",
        )
    if config.serving is None:
        if isinstance(source, JsonlPrompts | HFDatasetPrompts) and source.output_length_field:
            raise CombinationError(
                "prompts.output_length_field sets serving requests' lengths: offline runs "
                "generate max_new_tokens; remove it or set mode: serving",
                "prompts.output_length_field",
                "mode",
            )
        return
    _check_serving(config, config.serving)


def _check_serving(config: _Experiment, serving: ServingConfig) -> None:
    source = config.prompts
    trace = isinstance(source, TracePrompts)
    if isinstance(source, ChatJsonlPrompts) and serving.endpoint != "chat":
        raise CombinationError(
            "chat_jsonl prompts are conversations: set serving.endpoint: chat",
            "prompts.source",
            "serving.endpoint",
        )
    if serving.n_requests is None and serving.duration_s is None and not (trace or serving.staged):
        raise CombinationError(
            "serving needs n_requests or duration_s (or both): when to stop sending",
            "serving.n_requests",
            "serving.duration_s",
        )
    if trace:
        # by value, not by fields set: a recorded config (config.json) dumps every default
        defaults = ServingConfig.model_fields
        given = [key for key in TRACE_GIVES if getattr(serving, key) != defaults[key].default]
        if given:
            raise CombinationError(
                f"a trace gives the arrival times: remove serving.{given[0]} (scale the "
                "trace's times with prompts.time_scale)",
                "prompts.source",
                f"serving.{given[0]}",
            )
        if serving.staged:
            key = "stages" if serving.stages is not None else "find_max_rate"
            raise CombinationError(
                f"a trace gives every request's arrival: it cannot also be serving.{key}",
                "prompts.source",
                f"serving.{key}",
            )
        if serving.sessions is not None:
            raise CombinationError(
                "a trace gives every request's arrival: it cannot also be sessions",
                "prompts.source",
                "serving.sessions",
            )
    if serving.sessions is not None and config.n_prompts < serving.sessions.turns:
        raise CombinationError(
            f"n_prompts ({config.n_prompts}) is fewer than one session's turns "
            f"({serving.sessions.turns})",
            "n_prompts",
            "serving.sessions.turns",
        )
    length = serving.output_length
    if length is None:
        resolved = "from_dataset" if gives_output_lengths(source) else "fixed"
        object.__setattr__(serving, "output_length", resolved)
    elif length == "from_dataset" and not gives_output_lengths(source):
        raise CombinationError(
            f"prompts.source {source.source} gives no output lengths: use output_length: "
            "fixed or a distribution (or a jsonl/hf_dataset output_length_field)",
            "serving.output_length",
            "prompts.source",
        )
    elif not isinstance(length, str):
        longest = length.tokens if isinstance(length, FixedLength) else length.max
        if longest is not None and longest > config.max_new_tokens:
            raise CombinationError(
                f"output lengths up to {longest} tokens exceed max_new_tokens "
                f"({config.max_new_tokens}), which sizes the server's context",
                "serving.output_length",
                "max_new_tokens",
            )


def _check_prompt_lengths(config: _Experiment) -> None:
    source = config.prompts
    if not isinstance(source, SyntheticPrompts | SharedPrefixPrompts):
        return
    length = source.input_length
    longest = length.tokens if isinstance(length, FixedLength) else length.max
    if longest is None:
        return
    prefix = source.prefix_tokens if isinstance(source, SharedPrefixPrompts) else 0
    if prefix + longest > config.max_input_tokens:
        what = f"{prefix} prefix + up to {longest}" if prefix else f"up to {longest}"
        raise CombinationError(
            f"synthetic prompts of {what} tokens exceed max_input_tokens "
            f"({config.max_input_tokens})",
            "prompts.input_length",
            "max_input_tokens",
        )
