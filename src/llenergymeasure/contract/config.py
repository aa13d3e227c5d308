"""ExperimentConfig: one experiment, exactly as the container will run it.

Units are in field names (`_s`, `_tokens`, `_c`) or descriptions. Defaults are the measured
method's defaults; a backend section left out is filled with that backend's defaults so the
recorded config is always the complete one that ran.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BACKENDS: tuple[str, ...] = ("pytorch", "vllm", "tensorrt")
Backend = Literal["pytorch", "vllm", "tensorrt"]

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class CombinationError(ValueError):
    """Values that are each valid but cannot go together (a cross-field rule).

    `fields` are the dotted paths involved, relative to the model that raises it; the study
    expansion reads them to tell a combination the sweep made (skipped, with this reason) from
    one the file wrote outright (an error at its line).
    """

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


class Strict(BaseModel):
    """Base of every contract model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


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


# --- backend sections -----------------------------------------------------------------------


class PyTorchConfig(Strict):
    batch_size: PositiveInt = 1
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = Field(
        None, description="None keeps transformers' default for the model."
    )
    torch_compile: bool = False
    torch_compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    use_cache: bool = True

    @model_validator(mode="after")
    def _one_quantisation(self) -> PyTorchConfig:
        if self.load_in_8bit and self.load_in_4bit:
            raise CombinationError(
                "load_in_8bit and load_in_4bit are mutually exclusive",
                "load_in_8bit",
                "load_in_4bit",
            )
        return self


VLLMQuantization = Literal[
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "fp8",
    "bitsandbytes",
    "compressed-tensors",
    "marlin",
    "gguf",
]


class VLLMConfig(Strict):
    max_num_seqs: PositiveInt = 256
    max_num_batched_tokens: PositiveInt | None = None
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enforce_eager: bool = False
    tensor_parallel_size: PositiveInt = 1
    pipeline_parallel_size: PositiveInt = 1
    quantization: VLLMQuantization | None = None
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = "auto"
    enable_prefix_caching: bool = False
    enable_chunked_prefill: bool | None = Field(None, description="None keeps vLLM's default.")
    max_model_len: PositiveInt | None = Field(
        None,
        description="None: the longest prompt of the run (after truncation) + max_new_tokens.",
    )
    block_size: PositiveInt | None = None
    engine_multiprocessing: bool = Field(
        True,
        description="vLLM's default V1 engine: the engine core runs in its own process, "
        "overlapping scheduling and output handling with the model's work. False runs it in "
        "the runner's process (VLLM_ENABLE_V1_MULTIPROCESSING=0).",
    )

    @property
    def gpus_needed(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size


TensorRTQuantization = Literal[
    "fp8", "int8_sq", "int4_awq", "w4a8_awq", "int8_wo", "int4_wo", "nvfp4"
]


class TensorRTConfig(Strict):
    engine: Literal["pytorch", "tensorrt"] = Field(
        "pytorch", description="TensorRT-LLM's PyTorch flow or a compiled TensorRT engine."
    )
    max_batch_size: PositiveInt = 8
    max_num_tokens: PositiveInt | None = None
    max_seq_len: PositiveInt | None = None
    tp_size: PositiveInt = 1
    pp_size: PositiveInt = 1
    quantization: TensorRTQuantization | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    kv_cache_free_gpu_memory_fraction: float = Field(0.9, gt=0, le=1)

    @property
    def gpus_needed(self) -> int:
        return self.tp_size * self.pp_size


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


class ExperimentConfig(Strict):
    """One experiment. The host hashes it; the container runs it."""

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
    pytorch: PyTorchConfig | None = None
    vllm: VLLMConfig | None = None
    tensorrt: TensorRTConfig | None = None

    @model_validator(mode="after")
    def _backend_section(self) -> ExperimentConfig:
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
            object.__setattr__(self, self.backend, _SECTIONS[self.backend]())
        return self

    @model_validator(mode="after")
    def _serving_section(self) -> ExperimentConfig:
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
    def _cross_checks(self) -> ExperimentConfig:
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
        if self.backend == "vllm":
            assert self.vllm is not None
            # gpu_count 0 is vLLM's CPU build (one process: TP = PP = 1).
            if self.vllm.gpus_needed != max(self.gpu_count, 1):
                raise CombinationError(
                    f"vllm.tensor_parallel_size x pipeline_parallel_size "
                    f"({self.vllm.gpus_needed}) must equal gpu_count ({self.gpu_count})"
                    + (" (1 on CPU, gpu_count 0)" if self.gpu_count == 0 else ""),
                    "vllm.tensor_parallel_size",
                    "vllm.pipeline_parallel_size",
                    "gpu_count",
                )
        if self.backend == "tensorrt":
            assert self.tensorrt is not None
            if self.tensorrt.gpus_needed != self.gpu_count:
                raise CombinationError(
                    f"tensorrt.tp_size x pp_size ({self.tensorrt.gpus_needed}) must equal "
                    f"gpu_count ({self.gpu_count})",
                    "tensorrt.tp_size",
                    "tensorrt.pp_size",
                    "gpu_count",
                )
            if self.tensorrt.engine == "pytorch" and self.tensorrt.quantization is not None:
                raise CombinationError(
                    "tensorrt.quantization quantises while building a TensorRT engine; the "
                    "PyTorch flow (tensorrt.engine: pytorch) only loads checkpoints that are "
                    "already quantised: set tensorrt.engine: tensorrt, or point model at a "
                    "quantised checkpoint and leave quantization null",
                    "tensorrt.engine",
                    "tensorrt.quantization",
                )
        if self.backend == "tensorrt" and self.gpu_count == 0:
            raise CombinationError(
                "backend 'tensorrt' needs gpu_count >= 1", "backend", "gpu_count"
            )
        if self.backend == "pytorch":
            assert self.pytorch is not None
            if (self.pytorch.load_in_8bit or self.pytorch.load_in_4bit) and self.gpu_count == 0:
                raise CombinationError(
                    "bitsandbytes quantisation (load_in_8bit/4bit) needs a GPU",
                    "pytorch.load_in_8bit",
                    "pytorch.load_in_4bit",
                    "gpu_count",
                )
        return self

    @property
    def backend_section(self) -> PyTorchConfig | VLLMConfig | TensorRTConfig:
        section = getattr(self, self.backend)
        assert section is not None
        return section


_SECTIONS: dict[str, type[Strict]] = {
    "pytorch": PyTorchConfig,
    "vllm": VLLMConfig,
    "tensorrt": TensorRTConfig,
}
