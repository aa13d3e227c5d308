"""The interface every inference engine adapter implements, so the protocol never changes.

The protocol owns timing, energy and repetition; an adapter only loads, tokenises, and generates
one batch of pre-tokenised prompts, reporting what it generated and when each token appeared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.config import ExperimentConfig

Device = Literal["cuda", "cpu"]


class BackendUnavailable(RuntimeError):
    """The configured backend cannot run in this image (its engine is missing, or a need of
    the run that this image cannot meet)."""


EngineArguments = dict[str, str | int | float | bool | None]


def hub_kwargs(config: ExperimentConfig, *, offline: bool) -> dict[str, Any]:
    """`from_pretrained` arguments for the model: local files only when offline or a folder."""
    local = Path(config.model).is_dir()
    kwargs: dict[str, Any] = {"local_files_only": offline or local}
    if config.revision and not local:
        kwargs["revision"] = config.revision
    return kwargs


@dataclass(frozen=True)
class BatchOutput:
    """What one `generate` call produced, one entry per request, in the batch's order.

    `token_times_s[r][k]` is when request r's (k+1)-th generated token existed on the host, in
    seconds after the batch started; its length equals `output_tokens[r]`, or is 0 for every
    request when the engine cannot time tokens (then `token_times_reason` says why).
    """

    output_tokens: list[int]
    request_latency_s: list[float]
    token_times_s: list[list[float]]
    token_times_reason: str | None = None


@dataclass(frozen=True)
class MemoryStats:
    """Peak device memory since the last reset, MB; None with a reason where not measurable."""

    peak_allocated_mb: float | None
    peak_reserved_mb: float | None
    reason: str | None = None


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs estimate needs; counted from the loaded weights and config."""

    parameters: int
    matmul_parameters: int  # all but an untied input embedding, which is a lookup
    layers: int
    attention_dim: int  # heads x head size: the width of QK^T and AV per layer


@dataclass(frozen=True)
class ServerRequest:
    """What a backend's OpenAI-compatible server is started for (`mode: serving`)."""

    config: ExperimentConfig
    offline: bool
    longest_prompt_tokens: int
    port: int
    served_model: str  # the name requests use


@dataclass(frozen=True)
class ServerCommand:
    """A server's command line; `arguments` is exactly what it passes (flags, and the content
    of `files`, by dotted key), for the result's record; `files`: work-folder file name ->
    text, written before it starts (options the command line points at)."""

    argv: list[str]
    arguments: EngineArguments
    files: dict[str, str] = field(default_factory=dict)


def cli_flags(kwargs: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    """Keyword arguments as argparse flags: `x_y=v` -> `--x-y v`; booleans as `--x-y` /
    `--no-x-y` (argparse's BooleanOptionalAction, which vLLM's engine arguments use)."""
    flags: list[str] = []
    for key, value in kwargs.items():
        if key in skip or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def flat(arguments: dict[str, Any], prefix: str = "") -> EngineArguments:
    """Nested options as dotted scalar keys (`kv_cache_config.enable_block_reuse`)."""
    out: EngineArguments = {}
    for key, value in arguments.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class BackendAdapter(ABC):
    """One engine. Created unloaded; `load` is timed and metered by the protocol."""

    name: str
    # How token times are taken, for the result's latency.method; None: the PyTorch streamer's.
    latency_method: str | None = None

    def build_skipped(self, config: ExperimentConfig) -> str | None:
        """Why no engine build runs before `load` for `config`; None when `build` must run."""
        return f"backend '{self.name}' loads the weights directly; it compiles no engine"

    def build(self, config: ExperimentConfig, *, offline: bool) -> None:  # noqa: B027
        """Compile and cache the engine `load` will use; timed and metered apart from `load`."""

    def load_tokenizer(self, config: ExperimentConfig, *, offline: bool) -> None:
        """Load the model's tokenizer: the prompt set is tokenised before the engine loads, so
        the engine can be sized to the prompts the run really has."""
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(
            config.model, **hub_kwargs(config, offline=offline)
        )

    @abstractmethod
    def load(self, config: ExperimentConfig, *, offline: bool, longest_prompt_tokens: int) -> None:
        """Load the model (or engine) for `config`, after `load_tokenizer`; raises on a bad
        model or option. `longest_prompt_tokens`: the longest tokenised prompt of the run."""

    def engine_arguments(self) -> EngineArguments:
        """What the engine was started with beyond the experiment's config (derived values,
        environment switches), for the result's record; after `load`."""
        return {}

    @abstractmethod
    def engine(self) -> tuple[str, str | None]:
        """(engine name, version), e.g. ('transformers', '5.0.0')."""

    @abstractmethod
    def device(self) -> Device: ...

    # Every supported engine tokenises with a Hugging Face tokenizer, set by `load`.
    _tokenizer: Any

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        """A conversation in tokens as a server's chat endpoint makes it: the model's chat
        template, the assistant's turn opened."""
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(
                "the model's tokenizer has no chat template, so it cannot serve chat requests; "
                "use serving.endpoint: completions"
            )
        text = self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return self.encode(str(text), add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))

    def special_token_ids(self) -> set[int]:
        """Ids that synthetic prompts must not contain (BOS, EOS, pad, unknown...)."""
        return set(self._tokenizer.all_special_ids)

    @abstractmethod
    def prepare(self, batch: list[list[int]]) -> Any:
        """Turn a batch of token-id lists into the engine's input (on the device), untimed."""

    @abstractmethod
    def generate(self, prepared: Any) -> BatchOutput:
        """Generate for one prepared batch; returns once every token is on the host."""

    @abstractmethod
    def synchronize(self) -> None:
        """Block until the device has finished all queued work (no-op on CPU)."""

    @abstractmethod
    def reset_peak_memory(self) -> None: ...

    @abstractmethod
    def memory_stats(self) -> MemoryStats: ...

    @abstractmethod
    def model_shape(self) -> ModelShape: ...

    def runtime_versions(self) -> dict[str, str | None]:
        """torch/transformers/CUDA versions: every supported engine runs on torch."""
        import torch
        import transformers

        return {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.version.cuda,
        }

    def server_command(self, request: ServerRequest) -> ServerCommand:
        """The command line of the backend's own OpenAI-compatible server on loopback, made
        from the experiment's config as offline mode makes the engine's arguments."""
        reason = spec_of(request.config.backend).no_server_reason
        raise BackendUnavailable(reason or f"backend '{self.name}' has no server in llem")

    def close(self) -> None:  # noqa: B027 - most engines need nothing here
        """Release the engine (processes, device memory)."""
