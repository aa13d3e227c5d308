"""ExperimentConfig: one experiment, exactly as the container will run it.

Units are in field names (`_s`, `_tokens`, `_c`) or descriptions. Defaults are the measured
method's defaults; a backend section left out is filled with that backend's defaults so the
recorded config is always the complete one that ran.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model, model_validator

from llenergymeasure.contract.backends import BACKEND_TABLE, BACKENDS
from llenergymeasure.contract.fields import (
    CombinationError,
    NonNegativeFloat,
    PositiveInt,
    Precision,
    Strict,
)
from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.contract.prompt_lengths import AT_MOST, MAX_PROMPTS, TokenCount
from llenergymeasure.contract.prompt_sources import (
    PromptSource,
    SyntheticPrompts,
)
from llenergymeasure.contract.sections.base import BackendSection
from llenergymeasure.contract.serving import ServingConfig
from llenergymeasure.contract.workload import check_workload

Backend = Literal[BACKENDS]  # type: ignore[valid-type]

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
    thermal_max_s: NonNegativeFloat = Field(
        0.0,
        description="After latency settles, go on warming up (offline, on a GPU) until every "
        "GPU's temperature rose by at most thermal_rise_c over the last thermal_window_s, for "
        "at most this long, s; 0: off.",
    )
    thermal_window_s: float = Field(
        10.0, gt=0, description="The trailing span the temperature rise is read over, s."
    )
    thermal_rise_c: float = Field(
        1.0,
        gt=0,
        description="Largest temperature rise over thermal_window_s that counts as steady, C.",
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
        if 0 < self.thermal_max_s < self.thermal_window_s:
            raise CombinationError(
                f"thermal_max_s ({self.thermal_max_s:g}) is shorter than thermal_window_s "
                f"({self.thermal_window_s:g}): the temperature could never be judged steady",
                "thermal_max_s",
                "thermal_window_s",
            )
        return self


class Baseline(Strict):
    enabled: bool = True
    duration_s: float = Field(
        30.0, gt=0, description="Idle power reading with the model loaded, in seconds."
    )
    reuse_s: float | None = Field(
        None,
        gt=0,
        description="Reuse the idle baseline an earlier run of the study measured on the same "
        "GPUs (by UUID) of the same host within this many seconds, while the GPUs are no warmer "
        "than during it; null: every run measures its own.",
    )


# --- the experiment -------------------------------------------------------------------------


class _Experiment(Strict):
    """One experiment. The host hashes it; the container runs it. Its backend sections (one
    field per backend, `pytorch: PyTorchConfig | None`, ...) come from the backend table."""

    model: str = Field(min_length=1, description="Hub id or a local folder.")
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch).")
    backend: Backend = "pytorch"
    precision: Precision = Precision.bf16
    prompts: PromptSource = Field(default_factory=SyntheticPrompts)
    n_prompts: int = Field(
        100, gt=0, le=MAX_PROMPTS, description=f"Prompts in the set (at most {MAX_PROMPTS:,})."
    )
    max_input_tokens: TokenCount = Field(
        2048, description=f"Longer prompts are truncated to this many tokens ({AT_MOST})."
    )
    max_new_tokens: TokenCount = Field(
        128,
        description="Output tokens per request: exactly this many while fixed_output_length, "
        f"else at most ({AT_MOST}).",
    )
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
    gpu: GpuSettings = Field(
        default_factory=GpuSettings,
        description="Power limit and locked clocks the host sets on the run's GPUs (NVML).",
    )
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
                "mode: serving needs a 'serving:' section (n_requests or duration_s at least, "
                "unless the prompts are a trace)",
                "mode",
                "serving",
            )
        if self.mode == "serving" and self.warmup.thermal_max_s > 0:
            raise CombinationError(
                "warmup.thermal_max_s is for offline mode: a serving run's window is the steady "
                "state its own load reaches",
                "warmup",
                "mode",
            )
        return self

    @model_validator(mode="after")
    def _gpu_settings(self) -> _Experiment:
        if self.gpu.any and self.gpu_count == 0:
            raise CombinationError(
                "gpu.power_limit_w and gpu.locked_clocks_mhz set a GPU, but gpu_count is 0",
                "gpu",
                "gpu_count",
            )
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> _Experiment:
        check_workload(self)
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
