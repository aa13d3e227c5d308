"""The `serving:` section: an open-loop load against the backend's own OpenAI-compatible
server, its SLOs, its endpoint, output lengths and multi-turn sessions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from llenergymeasure.contract.fields import (
    CombinationError,
    NonNegativeFloat,
    PositiveInt,
    Strict,
)
from llenergymeasure.contract.prompt_sources import FixedLength, NormalLength, UniformLength


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


class Sessions(Strict):
    """Multi-turn conversations: each session's turns are consecutive prompts of the set; turn
    k carries the conversation so far (every earlier prompt and the answer streamed back) and is
    sent `think_time_s` after the previous answer ended. Sessions arrive at `request_rate`."""

    turns: int = Field(ge=2, description="Requests per session.")
    think_time_s: NonNegativeFloat = Field(
        0.0, description="From an answer's last token to the next turn's send, s."
    )


OutputLength = Annotated[
    FixedLength | UniformLength | NormalLength, Field(discriminator="distribution")
]


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
    endpoint: Literal["completions", "chat"] = Field(
        "completions",
        description="completions: /v1/completions with the prompt as token ids; chat: "
        "/v1/chat/completions with messages, the server applying the model's chat template.",
    )
    output_length: Literal["fixed", "from_dataset"] | OutputLength | None = Field(
        None,
        description="Each request's output tokens: fixed (max_new_tokens), from_dataset (the "
        "source's per-request length, capped at max_new_tokens), or a seeded distribution. "
        "Unset: from_dataset where the source gives lengths, else fixed.",
    )
    sessions: Sessions | None = Field(None, description="Multi-turn sessions (endpoint: chat).")
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
        if self.sessions is not None and self.endpoint != "chat":
            raise CombinationError(
                "sessions carry a conversation: set serving.endpoint: chat",
                "sessions",
                "endpoint",
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
