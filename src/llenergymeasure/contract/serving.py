"""The `serving:` section: an open-loop load against the backend's own OpenAI-compatible
server, its SLOs, its endpoint, output lengths, multi-turn sessions and stages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from llenergymeasure.contract.fields import (
    CombinationError,
    NonNegativeFloat,
    PositiveInt,
    Strict,
)
from llenergymeasure.contract.prompt_lengths import FixedLength, NormalLength, UniformLength
from llenergymeasure.contract.serving_stages import FindMaxRate, RequestRate, Stage


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

    request_rate: RequestRate = Field(
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
    stages: list[Stage] | None = Field(
        None,
        min_length=1,
        description="Loads run one after another against one server start, each with its own "
        "warm-up, steady state, energy and figures; a stage's unset keys take this section's.",
    )
    find_max_rate: FindMaxRate | None = Field(
        None,
        description="Stages chosen as it goes, in one server start: the highest request rate "
        "that meets every SLO.",
    )
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
        self._check_stages()
        if self.n_requests is not None and self.warmup_requests >= self.n_requests:
            raise CombinationError(
                f"warmup_requests ({self.warmup_requests}) leaves none of n_requests "
                f"({self.n_requests}) to measure",
                "warmup_requests",
                "n_requests",
            )
        return self

    @property
    def rate(self) -> float:
        """Requests per second as a number (inf for 'inf')."""
        return float("inf") if self.request_rate == "inf" else float(self.request_rate)

    # stages -----------------------------------------------------------------------------------
    @property
    def staged(self) -> bool:
        return self.stages is not None or self.find_max_rate is not None

    def at_stage(self, stage: Stage) -> ServingConfig:
        """The settings one stage runs with: this section, the stage's keys over it."""
        merged = {
            **self.model_dump(exclude={"stages", "find_max_rate"}),
            **stage.model_dump(exclude_none=True),
        }
        return ServingConfig.model_validate(merged)

    def at_rate(self, rate: float) -> ServingConfig:
        """The settings of a find_max_rate stage at this rate."""
        return self.at_stage(Stage(request_rate=rate))

    def _check_stages(self) -> None:
        if self.stages is not None and self.find_max_rate is not None:
            raise CombinationError(
                "give serving.stages or serving.find_max_rate, not both: find_max_rate "
                "chooses its own stages",
                "stages",
                "find_max_rate",
            )
        if not self.staged:
            return
        key = "stages" if self.stages is not None else "find_max_rate"
        # by value, not by fields set: a recorded config (config.json) dumps every default
        if self.request_rate != ServingConfig.model_fields["request_rate"].default:
            raise CombinationError(
                f"serving.{key} sets each stage's rate: remove serving.request_rate",
                key,
                "request_rate",
            )
        if self.find_max_rate is not None:
            if not self.slo.given:
                raise CombinationError(
                    "find_max_rate looks for the highest rate that meets the SLOs: give "
                    "serving.slo (ttft_ms, tpot_ms or e2e_ms)",
                    "find_max_rate",
                    "slo",
                )
            stages = [Stage(request_rate=self.find_max_rate.high)]
        else:
            assert self.stages is not None
            stages = self.stages
        for k, stage in enumerate(stages):
            where = f"stage {k}" if self.stages is not None else "each find_max_rate stage"
            try:
                settings = self.at_stage(stage)
            except ValidationError as error:
                problem = error.errors()[0]["msg"].removeprefix("Value error, ")
                raise CombinationError(f"{where}: {problem}", key) from None
            if settings.n_requests is None and settings.duration_s is None:
                raise CombinationError(
                    f"{where} never ends: give it (or the serving section) n_requests or "
                    "duration_s",
                    key,
                    "n_requests",
                )
