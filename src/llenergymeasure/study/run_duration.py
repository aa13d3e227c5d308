"""A run's expected duration, by phase, for every mode: the one model behind the plan's estimate,
the study's wall time and each run's derived timeout (`ExecutionConfig.timeout_for`, which the
scheduler applies). Every figure is a guess and says so; what the plan cannot know is named in
`unknown` and left out, never invented.

Every run: the container's start and the model's load (offline: the backend's
`startup_guess_s`; serving: its `server_start_guess_s`, until the server answers; both in the
backend table), then the idle baseline (configured).

Offline: warm-up (`min_batches` batches, plus `thermal_max_s` on a GPU: its cap), then the
measured window: the prompt set in batches of the engine's concurrency, each batch
`max_new_tokens` decode steps at a guessed step time, repeated until `min_window_s`.

Serving, one load (a run without stages is one):
- sending: requests / rate (with sessions, their first turns), cut at `duration_s` (with both,
  the first to end wins); `request_rate: inf` sends everything at once. The warm-up
  (`warmup_s`, or `warmup_requests` at the rate) is the start of sending, not extra time.
- the drain, from the last send to the last answer. A chain (a request, or a session's turns
  and think times) takes `max_new_tokens` guessed decode steps per request; the load ends one
  chain after the last send or, where the arrivals outpace the server, once the backlog is
  through: ceil(chains / concurrency) chains one after another from the first send, the
  concurrency being the engine's cap on running sequences (and `max_concurrency`). A trace
  sends its rows at its own times: at most `duration_s`.
- `serving.stages`: the sum of the stages' loads, each with its own warm-up, sending and drain.
- `serving.find_max_rate`: the most stages its bounds and narrowing allow (`most_rate_probes`),
  each the longer of a stage at `low` and one at `high` (sending shrinks as the rate rises, the
  backlog grows). The worst case, and stages a search may stop early counted in full: a timeout
  must not kill a search that is going well.

Why `max_new_tokens` for every request: it caps every output length (fixed, from the dataset,
drawn), so the drain is not under-counted. Why decode steps only: a prompt of a few thousand
tokens is prefilled in a fraction of one answer's decode.

Not counted: model downloads and TensorRT engine builds (they depend on the network and the
model); a trace's arrival times where `duration_s` does not bound them (the plan does not read
the trace): `unknown` says so and names the setting that bounds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llenergymeasure.contract.backends import BackendSpec, spec_of
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.serving import ServingConfig
from llenergymeasure.contract.serving_stages import FindMaxRate

# Guessed time of one decode step of a batch, s (~30 tokens/s per sequence on a GPU).
DECODE_STEP_GUESS_S = {"gpu": 0.033, "cpu": 0.25}

TRACE_UNKNOWN = (
    "a trace's own arrival times (its first n_prompts rows x time_scale): the plan does not "
    "read the trace, so its sending time is not counted; serving.duration_s bounds it, "
    "execution.experiment_timeout_s sets the timeout"
)


@dataclass(frozen=True)
class RunEstimate:
    """Guessed duration of one run, by phase, s; how it was guessed, and what it leaves out."""

    startup_s: float  # container start + model load (serving: + the server's start)
    baseline_s: float
    warmup_s: float  # offline: warm-up batches; serving: the warm-up part of sending
    measured_s: float  # offline: the measured window; serving: the sending after its warm-up
    drain_s: float  # serving: from the last send to the last answer, over every stage
    method: str
    unknown: str | None = None  # what the plan cannot know, left out of total_s

    @property
    def total_s(self) -> float:
        return self.startup_s + self.baseline_s + self.warmup_s + self.measured_s + self.drain_s

    def as_dict(self) -> dict[str, float | str | None]:
        return {
            "startup_s": self.startup_s,
            "baseline_s": self.baseline_s,
            "warmup_s": self.warmup_s,
            "measured_s": self.measured_s,
            "drain_s": self.drain_s,
            "total_s": self.total_s,
            "method": self.method,
            "unknown": self.unknown,
        }


def estimate_run(config: ExperimentConfig) -> RunEstimate:
    """The expected duration of one run of `config`, any mode (the module docstring's rule)."""
    spec = spec_of(config.backend)
    baseline = config.baseline.duration_s if config.baseline.enabled else 0.0
    if config.serving is None:
        return _offline(config, spec, baseline)
    return _serving(config, config.serving, spec, baseline)


def most_rate_probes(search: FindMaxRate) -> int:
    """The most stages `find_max_rate` can run, by the rule of experiment/serving/rate_search.py:
    up from `low` by x `growth` to `high`; once a stage fails, the bracket (last met, first
    failed) is at most `growth` wide as a ratio and each probe leaves at most `shrink` of its
    width (false position kept in the middle half: 3/4; the geometric mean of a bracket of ratio
    R <= growth: sqrt(R) / (1 + sqrt(R))) until it is within `tolerance` of the met rate, which
    only rises; never more than `max_probes`."""
    up, rate = 1, search.low
    while rate < search.high:
        rate = min(rate * search.growth, search.high)
        up += 1
    root = math.sqrt(search.growth)
    shrink = max(0.75, root / (1 + root))
    narrowing, gap = 0, search.growth - 1  # the bracket's width over the met rate
    while gap > search.tolerance:
        gap *= shrink
        narrowing += 1
    return min(search.max_probes, up + narrowing)


# --- offline ----------------------------------------------------------------------------------


def _offline(config: ExperimentConfig, spec: BackendSpec, baseline: float) -> RunEstimate:
    step_s = _step_s(config)
    batch_s = config.max_new_tokens * step_s
    concurrency = max(1, min(_engine_cap(config, spec), config.n_prompts))
    batches = math.ceil(config.n_prompts / concurrency)
    pass_s = batches * batch_s
    passes = max(1, math.ceil(config.min_window_s / pass_s)) if pass_s > 0 else 1
    warmup = config.warmup.min_batches * batch_s if config.warmup.enabled else 0.0
    if config.warmup.enabled and config.gpu_count > 0:
        warmup += config.warmup.thermal_max_s  # at most; a GPU that settles sooner stops sooner
    return RunEstimate(
        startup_s=spec.startup_guess_s,
        baseline_s=baseline,
        warmup_s=warmup,
        measured_s=passes * pass_s,
        drain_s=0.0,
        method=f"offline: warm-up, then {passes} pass(es) of {batches} batch(es) of <= "
        f"{concurrency} x {config.max_new_tokens} tokens at a guessed {step_s:g} s/step",
    )


# --- serving ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Load:
    """One stage's guessed phases, s."""

    warmup_s: float
    measured_s: float
    drain_s: float

    @property
    def total_s(self) -> float:
        return self.warmup_s + self.measured_s + self.drain_s


def _serving(
    config: ExperimentConfig, serving: ServingConfig, spec: BackendSpec, baseline: float
) -> RunEstimate:
    search = serving.find_max_rate
    if search is not None:
        probes = most_rate_probes(search)
        at_ends = [_load(config, serving.at_rate(rate)) for rate in (search.low, search.high)]
        loads = [max(at_ends, key=lambda load: load.total_s)] * probes
        how = (
            f"find_max_rate: at most {probes} stages, each the longer of one at "
            f"{search.low:g} and at {search.high:g} req/s"
        )
    elif serving.stages is not None:
        loads = [_load(config, serving.at_stage(stage)) for stage in serving.stages]
        how = f"{len(loads)} stages, summed"
    else:
        loads = [_load(config, serving)]
        how = "one load"
    trace = config.prompts.gives_arrivals
    unknown = TRACE_UNKNOWN if trace and serving.duration_s is None else None
    return RunEstimate(
        # a backend without a server never runs serving (the plan skips it): its load stands in
        startup_s=spec.server_start_guess_s or spec.startup_guess_s,
        baseline_s=baseline,
        warmup_s=sum(load.warmup_s for load in loads),
        measured_s=sum(load.measured_s for load in loads),
        drain_s=sum(load.drain_s for load in loads),
        method=f"serving, {how}: requests / rate (cut at duration_s), then the drain: the last "
        f"answers ({config.max_new_tokens} tokens at a guessed {_step_s(config):g} s/step) or "
        "the backlog past the engine's concurrency",
        unknown=unknown,
    )


def _load(config: ExperimentConfig, settings: ServingConfig) -> _Load:
    """One stage under `settings` (the serving section with the stage's keys over it)."""
    turns = settings.sessions.turns if settings.sessions is not None else 1
    think_s = settings.sessions.think_time_s if settings.sessions is not None else 0.0
    chain_s = turns * config.max_new_tokens * _step_s(config) + (turns - 1) * think_s
    sending_s, chains, rate = _sending(config, settings, turns)
    concurrency = _engine_cap(config, spec_of(config.backend))
    if settings.max_concurrency is not None:
        concurrency = min(concurrency, settings.max_concurrency)
    finish_s = max(sending_s + chain_s, math.ceil(chains / concurrency) * chain_s)
    warm_s = settings.warmup_s
    if rate is not None:
        warm_s = max(warm_s, settings.warmup_requests / turns / rate)
    warm_s = min(warm_s, sending_s)
    return _Load(warm_s, sending_s - warm_s, finish_s - sending_s)


def _sending(
    config: ExperimentConfig, settings: ServingConfig, turns: int
) -> tuple[float, float, float | None]:
    """(sending time s, chains sent, their rate per s where the arrival process sets one)."""
    if config.prompts.gives_arrivals:
        rows = min(config.n_prompts, settings.n_requests or config.n_prompts)
        return settings.duration_s or 0.0, rows, None  # the trace's end at most; else unknown
    if settings.request_rate == "inf":
        assert settings.n_requests is not None  # the contract's: 'inf' needs n_requests
        return 0.0, math.ceil(settings.n_requests / turns), None
    rate = settings.rate
    by_count = math.ceil(settings.n_requests / turns) / rate if settings.n_requests else math.inf
    sending_s = min(by_count, settings.duration_s or math.inf)
    return sending_s, rate * sending_s, rate


def _step_s(config: ExperimentConfig) -> float:
    return DECODE_STEP_GUESS_S["gpu" if config.gpu_count > 0 else "cpu"]


def _engine_cap(config: ExperimentConfig, spec: BackendSpec) -> int:
    """The most sequences the engine decodes together (its section's concurrency key)."""
    return max(1, int(getattr(config.backend_section, spec.concurrency_key)))
