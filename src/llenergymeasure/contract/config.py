"""ExperimentConfig: one experiment, exactly as the container will run it.

Units are in field names (`_s`, `_tokens`, `_c`) or descriptions. Defaults are the measured
method's defaults; a backend section left out is filled with that backend's defaults so the
recorded config is always the complete one that ran.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from llenergymeasure.contract.backends import BACKEND_TABLE, BACKENDS
from llenergymeasure.contract.fields import (
    CombinationError,
    NonNegativeFloat,
    PositiveInt,
    Precision,
    Strict,
)
from llenergymeasure.contract.sections.base import BackendSection

Backend = Literal[BACKENDS]  # type: ignore[valid-type]

# --- prompt sources -------------------------------------------------------------------------


class FixedLength(Strict):
    distribution: Literal["fixed"] = "fixed"
    tokens: PositiveInt = Field(128, description="Input length of every prompt, in tokens.")


class UniformLength(Strict):
    distribution: Literal["uniform"]
    min: PositiveInt = Field(description="Shortest input, in tokens.")
    max: PositiveInt = Field(description="Longest input, in tokens.")

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.min > self.max:
            raise CombinationError(
                f"min ({self.min}) must not exceed max ({self.max})", "min", "max"
            )
        return self


class NormalLength(Strict):
    distribution: Literal["normal"]
    mean: PositiveInt = Field(description="Mean input length, in tokens.")
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


class JsonlPrompts(Strict):
    """One JSON object per line; `field` holds the prompt text."""

    source: Literal["jsonl"]
    path: str = Field(
        min_length=1,
        description="On the host: absolute or relative to the study file. The host mounts it "
        "read-only into the container and names the in-container path in config.json.",
    )
    field: str = "prompt"


class HFDatasetPrompts(Strict):
    """A Hugging Face dataset: a hub name, or a local path (a folder of data files or a saved
    dataset; absolute or relative to the study file, mounted read-only into the container)."""

    source: Literal["hf_dataset"]
    name: str = Field(min_length=1)
    config_name: str | None = None
    split: str = "train"
    field: str = "text"


PromptSource = Annotated[
    SyntheticPrompts | JsonlPrompts | HFDatasetPrompts, Field(discriminator="source")
]


# --- method -----------------------------------------------------------------------------------


class Decoding(Strict):
    """Greedy when temperature is 0 (the default); sampling otherwise."""

    temperature: NonNegativeFloat = 0.0
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="0 disables top-k filtering.")
    repetition_penalty: float = Field(1.0, gt=0)
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @model_validator(mode="after")
    def _sampling_knobs_need_sampling(self) -> Decoding:
        if self.greedy and (self.top_p != 1.0 or self.top_k != 0):
            raise CombinationError(
                "top_p/top_k have no effect under greedy decoding (temperature 0); "
                "set temperature > 0 or leave them at their defaults",
                "temperature",
                "top_p",
                "top_k",
            )
        return self


class Warmup(Strict):
    enabled: bool = True
    min_batches: PositiveInt = Field(3, description="Batches always run before checking CV.")
    max_batches: PositiveInt = Field(30, description="Cap: stop warming up after this many.")
    cv_window: int = Field(3, ge=2, description="Trailing batches whose latency CV is checked.")
    cv_bound: float = Field(
        0.05, gt=0, lt=1, description="Warm when latency coefficient of variation is below this."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Warmup:
        if self.min_batches > self.max_batches:
            raise CombinationError(
                f"min_batches ({self.min_batches}) must not exceed max_batches "
                f"({self.max_batches})",
                "min_batches",
                "max_batches",
            )
        return self


class Baseline(Strict):
    enabled: bool = True
    duration_s: float = Field(
        30.0, gt=0, description="Idle power reading with the model loaded, in seconds."
    )


# --- the experiment -------------------------------------------------------------------------


class ServingSLO(Strict):
    """Latency objectives a request must all meet to count toward goodput, in milliseconds."""

    ttft_ms: float | None = Field(None, gt=0, description="Time to first token.")
    tpot_ms: float | None = Field(
        None, gt=0, description="Time per output token after the first: (E2E - TTFT)/(n - 1)."
    )
    e2e_ms: float | None = Field(None, gt=0, description="Request latency, send to last token.")

    @property
    def given(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


# The most requests one serving run sends: its send times are drawn up front, and its
# per-request records are one table.
MAX_SERVING_REQUESTS = 1_000_000


class ServingConfig(Strict):
    """Open-loop load against the backend's own OpenAI-compatible server (mode: serving)."""

    request_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] | Literal["inf"] = Field(
        1.0,
        description="Target arrivals per second, or 'inf': every request sent at once (then "
        "max_concurrency caps those in flight).",
    )
    arrival: Literal["poisson", "gamma", "constant"] = Field(
        "poisson",
        description="Inter-arrival times: exponential (poisson), gamma with shape `burstiness`, "
        "or constant 1/request_rate.",
    )
    burstiness: float = Field(
        1.0,
        gt=0,
        description="Gamma shape: 1 is Poisson, below 1 burstier, above 1 more regular.",
    )
    max_concurrency: PositiveInt | None = Field(
        None, description="Most requests in flight; a send waits for a free place (unset: none)."
    )
    n_requests: PositiveInt | None = Field(
        None,
        le=MAX_SERVING_REQUESTS,
        description="Requests sent, warm-up included (unset: as many as duration_s takes).",
    )
    duration_s: float | None = Field(
        None, gt=0, description="Stop sending after this long, s (with n_requests: first wins)."
    )
    warmup_requests: int = Field(
        0, ge=0, description="The first requests, excluded from every figure."
    )
    warmup_s: NonNegativeFloat = Field(
        0.0, description="The first seconds of sending, excluded from every figure."
    )
    steady_fraction: float = Field(
        0.9,
        gt=0,
        le=1,
        description="The steady state starts when requests in flight (averaged over slice_s) "
        "reach this fraction of their level over the second half of sending; it ends at the "
        "last send.",
    )
    min_steady_s: float = Field(
        30.0, gt=0, description="A shorter steady state is a quality warning, s."
    )
    slice_s: float = Field(5.0, gt=0, description="Energy per time slice of this length, s.")
    slo: ServingSLO = Field(default_factory=ServingSLO)
    seed: int = Field(0, description="Seeds the arrival times and the prompt order.")
    readiness_timeout_s: float = Field(
        900.0, gt=0, description="The server must answer /health within this long, s."
    )
    max_send_lag_s: float = Field(
        0.05,
        gt=0,
        description="A request sent later than its arrival time by more than this (p99) is a "
        "warning: the host could not generate the rate.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> ServingConfig:
        if self.n_requests is None and self.duration_s is None:
            raise CombinationError(
                "serving needs n_requests or duration_s (or both): when to stop sending",
                "n_requests",
                "duration_s",
            )
        if self.request_rate == "inf" and self.duration_s is not None and self.n_requests is None:
            raise CombinationError(
                "request_rate 'inf' sends every request at once: give n_requests",
                "request_rate",
                "n_requests",
            )
        if (
            self.n_requests is None
            and self.duration_s is not None
            and self.rate * self.duration_s > MAX_SERVING_REQUESTS
        ):
            raise CombinationError(
                f"request_rate x duration_s is {self.rate * self.duration_s:,.0f} requests, above "
                f"the {MAX_SERVING_REQUESTS:,} a serving run may send",
                "request_rate",
                "duration_s",
            )
        if self.n_requests is not None and self.warmup_requests >= self.n_requests:
            raise CombinationError(
                f"warmup_requests ({self.warmup_requests}) leaves none of n_requests "
                f"({self.n_requests}) to measure",
                "warmup_requests",
                "n_requests",
            )
        return self

    @field_validator("request_rate", mode="before")
    @classmethod
    def _inf_spellings(cls, value: object) -> object:
        # YAML's .inf is a float; "Inf"/"INF" are strings: all mean 'inf'.
        if isinstance(value, float) and value == float("inf"):
            return "inf"
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
            return "inf"
        return value

    @property
    def rate(self) -> float:
        """Requests per second as a number (inf for 'inf')."""
        return float("inf") if self.request_rate == "inf" else float(self.request_rate)


class _Experiment(Strict):
    """One experiment. The host hashes it; the container runs it. Its backend sections (one
    field per backend, `pytorch: PyTorchConfig | None`, ...) come from the backend table."""

    model: str = Field(min_length=1, description="Hub id or a local folder.")
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch).")
    backend: Backend = "pytorch"
    precision: Precision = Precision.bf16
    prompts: PromptSource = Field(default_factory=SyntheticPrompts)
    n_prompts: PositiveInt = 100
    max_input_tokens: PositiveInt = Field(
        2048, description="Longer prompts are truncated to this many tokens."
    )
    max_new_tokens: PositiveInt = 128
    fixed_output_length: bool = Field(
        True, description="Ignore EOS so every backend generates exactly max_new_tokens."
    )
    decoding: Decoding = Field(default_factory=Decoding)
    warmup: Warmup = Field(default_factory=Warmup)
    baseline: Baseline = Field(default_factory=Baseline)
    min_window_s: NonNegativeFloat = Field(
        10.0, description="The measured window repeats the prompt set until this has passed."
    )
    gpu_count: int = Field(1, ge=0, description="GPUs given to the container; 0 runs on CPU.")
    mode: Literal["offline", "serving"] = Field(
        "offline",
        description="offline: the prompt set in batches through the engine's API; serving: the "
        "backend's OpenAI-compatible server under open-loop load (the `serving:` section).",
    )
    serving: ServingConfig | None = None

    @model_validator(mode="after")
    def _backend_section(self) -> _Experiment:
        for name in BACKENDS:
            if name != self.backend and getattr(self, name) is not None:
                raise CombinationError(
                    f"a '{name}:' section was given but backend is '{self.backend}'; "
                    f"remove it or set backend: {name}",
                    name,
                    "backend",
                )
        if getattr(self, self.backend) is None:
            # Fill in the defaults so the recorded config is the one that ran.
            object.__setattr__(self, self.backend, BACKEND_TABLE[self.backend].section())
        return self

    @model_validator(mode="after")
    def _serving_section(self) -> _Experiment:
        if self.mode == "offline" and self.serving is not None:
            raise CombinationError(
                "a 'serving:' section was given but mode is 'offline'; set mode: serving",
                "serving",
                "mode",
            )
        if self.mode == "serving" and self.serving is None:
            raise CombinationError(
                "mode: serving needs a 'serving:' section (n_requests or duration_s at least)",
                "mode",
                "serving",
            )
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> _Experiment:
        if isinstance(self.prompts, SyntheticPrompts):
            length = self.prompts.input_length
            longest = length.tokens if isinstance(length, FixedLength) else length.max
            if longest is not None and longest > self.max_input_tokens:
                raise CombinationError(
                    f"synthetic prompts of up to {longest} tokens exceed "
                    f"max_input_tokens ({self.max_input_tokens})",
                    "prompts.input_length",
                    "max_input_tokens",
                )
        self.backend_section.check(self.gpu_count)
        return self

    @property
    def backend_section(self) -> Any:
        """The chosen backend's section (a `BackendSection`; its own type per backend)."""
        section = getattr(self, self.backend)
        assert isinstance(section, BackendSection)
        return section


ExperimentConfig = create_model(
    "ExperimentConfig",
    __base__=_Experiment,
    __module__=__name__,
    __doc__=_Experiment.__doc__,
    **{name: (spec.section | None, None) for name, spec in BACKEND_TABLE.items()},  # type: ignore[call-overload]
)
