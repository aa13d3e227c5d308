"""Rules between a run's prompt source, its mode and its serving load: which sources need
serving or the chat endpoint, how long each request's output is, when a load ends. What a
source is (serving-only, chat-only, giving arrivals or output lengths) the source says
(`prompt_sources.py`); the rules here read those answers."""

from __future__ import annotations

from typing import Literal, Protocol

from llenergymeasure.contract.fields import CombinationError
from llenergymeasure.contract.prompt_sources import PromptSource
from llenergymeasure.contract.serving import ServingConfig


class _Experiment(Protocol):
    """What these rules read of an experiment config."""

    prompts: PromptSource
    mode: Literal["offline", "serving"]
    serving: ServingConfig | None
    n_prompts: int
    max_input_tokens: int
    max_new_tokens: int


# What a source that gives arrivals (a trace) gives, so a serving section must not set it too.
TRACE_GIVES = ("request_rate", "arrival", "burstiness")


def check_workload(config: _Experiment) -> None:
    """Raise CombinationError for a source/mode/load that cannot go together; fill in the
    serving section's output length when it was left unset (the recorded config is the one
    that ran)."""
    _check_prompt_lengths(config)
    source = config.prompts
    if source.serving_only and config.mode != "serving":
        raise CombinationError(
            f"prompts.source {source.source} is a serving load: set mode: serving",
            "prompts.source",
            "mode",
        )
    if config.serving is None:
        key = source.output_length_key
        if key is not None:
            raise CombinationError(
                f"prompts.{key} sets serving requests' lengths: offline runs "
                "generate max_new_tokens; remove it or set mode: serving",
                f"prompts.{key}",
                "mode",
            )
        return
    _check_serving(config, config.serving)


def _check_serving(config: _Experiment, serving: ServingConfig) -> None:
    source = config.prompts
    trace = source.gives_arrivals
    if source.chat_only and serving.endpoint != "chat":
        raise CombinationError(
            f"{source.source} prompts are conversations: set serving.endpoint: chat",
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
        resolved = "from_dataset" if source.gives_output_lengths else "fixed"
        object.__setattr__(serving, "output_length", resolved)
    elif length == "from_dataset" and not source.gives_output_lengths:
        raise CombinationError(
            f"prompts.source {source.source} gives no output lengths: use output_length: "
            "fixed or a distribution (or a jsonl/hf_dataset output_length_field)",
            "serving.output_length",
            "prompts.source",
        )
    elif not isinstance(length, str):
        longest = length.longest
        if longest is not None and longest > config.max_new_tokens:
            raise CombinationError(
                f"output lengths up to {longest} tokens exceed max_new_tokens "
                f"({config.max_new_tokens}), which sizes the server's context",
                "serving.output_length",
                "max_new_tokens",
            )


def _check_prompt_lengths(config: _Experiment) -> None:
    span = config.prompts.synthetic_span()
    if span is None:
        return
    prefix, longest = span
    if prefix + longest > config.max_input_tokens:
        what = f"{prefix} prefix + up to {longest}" if prefix else f"up to {longest}"
        raise CombinationError(
            f"synthetic prompts of {what} tokens exceed max_input_tokens "
            f"({config.max_input_tokens})",
            "prompts.input_length",
            "max_input_tokens",
        )
