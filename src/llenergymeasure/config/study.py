"""StudyConfig: a study file once read — experiment defaults, sweep, experiments list, execution.

The experiment-level parts (`base_defaults`, `defaults`, `sweep`, `experiments`) stay plain data
here; `llenergymeasure.study.expand` turns them into validated ExperimentConfigs. The loader
(`config/loader.py`) fills the source text and the line map used for file:line messages.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from llenergymeasure.config.executors import (
    EXECUTORS,
    ExecutorSettings,
    LocalSettings,
    settings_for,
    split_sections,
)
from llenergymeasure.config.merge import deep_merge, flatten_sweep
from llenergymeasure.config.search import SearchConfig
from llenergymeasure.contract.backends import BACKEND_TABLE
from llenergymeasure.contract.config import Backend
from llenergymeasure.errors import UserError
from llenergymeasure.version import __version__

if TYPE_CHECKING:  # the YAML reader: only where a study is read from a file
    from llenergymeasure.config.source import SourceMap

CycleOrder = Literal["sequential", "interleaved", "shuffled"]

# A derived experiment timeout is this multiple of the run's wall-time estimate, plus the slack
# below for what the estimate cannot see (a first model download, a cold image layer cache).
TIMEOUT_ESTIMATE_FACTOR = 3.0
TIMEOUT_SLACK_S = 900.0


# Experiment containers never run as root; when llem does, they run as this dedicated user.
DEFAULT_CONTAINER_USER = "10001:10001"
# Tasks (processes + threads) per container: well above what every backend's engine was seen to
# use (README: container limits), far below a host's pid_max (32768 on many kernels).
DEFAULT_PIDS_LIMIT = 8192
# Names Docker accepts in --ulimit; `nproc` is left out on purpose: it counts per uid host-wide,
# so pids_limit bounds a container instead.
ULIMIT_NAMES = (
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)


def default_images() -> dict[str, str]:
    """The project's own image for each backend, tagged with this version."""
    return {name: f"{spec.image}:{__version__}" for name, spec in BACKEND_TABLE.items()}


class ExecutionConfig(BaseModel):
    """How the study runs: cycles, order, gaps, timeouts, GPUs. Not part of the design hash."""

    model_config = ConfigDict(extra="forbid")

    n_cycles: int = Field(1, ge=1, le=10_000, description="Times every configuration is run.")
    cycle_order: CycleOrder = Field(
        "interleaved",
        description=(
            "sequential: all cycles of a configuration back to back (A A B B); "
            "interleaved: one pass over all configurations per cycle (A B A B); "
            "shuffled: each cycle in its own seeded random order."
        ),
    )
    shuffle_seed: int | None = Field(
        None,
        description="Seed of the shuffled order; same seed, same order. Unset: derived from the "
        "study's design hash, so each study shuffles its own way and reruns shuffle alike.",
    )
    gap_between_experiments_s: float = Field(
        30.0, ge=0, description="Idle wait between two experiments, s."
    )
    gap_between_cycles_s: float = Field(
        60.0, ge=0, description="Idle wait between two cycles (instead of the experiment gap), s."
    )
    cooldown_to_temp_c: float | None = Field(
        None,
        gt=0,
        description="After the gap, also wait until the GPU is at or below this temperature, °C.",
    )
    experiment_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Kill an experiment after this long, s; derived from its estimate when unset.",
    )
    stall_timeout_s: float = Field(
        900.0,
        gt=0,
        description="Kill an experiment silent (no progress event) this long, s.",
    )
    max_runs_without_confirmation: int = Field(
        100, ge=1, description="Above this many runs `llem run` asks for --yes."
    )
    gpu_ids: list[int] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="Host GPU indices the study may use (the pool): a run with gpu_count N takes "
        "N free ones, the lowest first, never shared with a run in flight.",
    )

    max_parallel: int = Field(
        1,
        ge=1,
        description="Experiments run at once, each in its own slot: disjoint GPUs from gpu_ids "
        "(gpu_count of them), or for gpu_count 0 a disjoint set of host CPUs.",
    )
    cpu_ids: list[int] | None = Field(
        None,
        min_length=1,
        description="Host CPUs that runs with gpu_count 0 may use, split evenly between the "
        "max_parallel slots; default: every CPU of the host (pinned only when max_parallel > 1).",
    )
    executor: ExecutorSettings = Field(
        default_factory=LocalSettings,
        description="Where runs execute: local (containers on this host) or slurm (one Slurm "
        "job per run; its settings in execution.slurm, or inline: {kind: slurm, ...}).",
    )
    container_engine: Literal["docker", "podman"] = Field(
        "docker",
        description="The engine that runs the containers (on the nodes, for slurm): docker, or "
        "podman through its Docker-compatible API socket.",
    )
    foreign_gpu_processes: Literal["error", "warn"] = Field(
        "warn",
        description="A process that is not this study's on a run's GPU when it starts: error "
        "fails the run without starting it; warn runs it and records the processes.",
    )
    gpu_off_default: Literal["error", "warn"] = Field(
        "warn",
        description="A run's GPU whose power limit is not the driver's default when it starts, "
        "with no change of llem's to explain it (set by an administrator or another tool): "
        "error fails the run without starting it; warn runs it and records the warning "
        "gpu_off_default.",
    )
    container_user: str = Field(
        DEFAULT_CONTAINER_USER,
        pattern=r"^[0-9]+:[0-9]+$",
        description="uid:gid experiment containers run as when llem runs as root; otherwise "
        "they run as the invoker's uid:gid. Never 0: no experiment runs as root.",
    )
    pids_limit: int | None = Field(
        DEFAULT_PIDS_LIMIT,
        ge=64,
        description="Most processes and threads one experiment container may hold (a runaway "
        "pool or fork loop stops there, not at the host's limit); null: no limit.",
    )
    ulimits: dict[str, int] = Field(
        default_factory=dict,
        description="Resource limits of each experiment container, name -> value (soft = hard; "
        "-1 = unlimited), over the defaults (core 0; GPU runs: memlock -1, stack 64 MiB).",
    )

    # Sections named after an executor (`slurm:`): input only, folded into `executor`.
    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = dict(EXECUTORS)
    _sections: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _executor_sections(cls, data: Any, handler: Any) -> ExecutionConfig:
        # `executor: slurm` + a `slurm:` section is the grammar users write; the model holds
        # the chosen executor's settings, and keeps every section for `with_executor`.
        sections: dict[str, dict[str, Any]] = {}
        if isinstance(data, dict):
            data, sections = split_sections(data)
        config: ExecutionConfig = handler(data)
        config._sections = sections or config._sections
        return config

    @field_validator("container_user")
    @classmethod
    def _not_root(cls, value: str) -> str:
        if int(value.split(":")[0]) == 0:
            raise ValueError("the container user must not be uid 0 (root)")
        return value

    @field_validator("ulimits")
    @classmethod
    def _known_ulimits(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(ULIMIT_NAMES))
        if unknown:
            raise ValueError(f"unknown ulimit {unknown[0]!r}; known: {', '.join(ULIMIT_NAMES)}")
        if any(limit < -1 for limit in value.values()):
            raise ValueError("a ulimit is -1 (unlimited) or a non-negative number")
        return value

    @field_validator("gpu_ids", "cpu_ids")
    @classmethod
    def _distinct_indices(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return value
        if any(index < 0 for index in value):
            raise ValueError("indices are 0 or more")
        if len(set(value)) != len(value):
            raise ValueError("indices must be distinct")
        return value

    def with_executor(self, kind: str) -> ExecutionConfig:
        """These settings on executor `kind` (its section of the study file, if any)."""
        return self.model_copy(update={"executor": settings_for(kind, self._sections.get(kind))})

    def without_gaps(self) -> ExecutionConfig:
        """No gap between runs and no cool-down (`llem run --no-gaps`)."""
        return self.model_copy(
            update={
                "gap_between_experiments_s": 0.0,
                "gap_between_cycles_s": 0.0,
                "cooldown_to_temp_c": None,
            }
        )

    def timeout_for(self, estimated_run_s: float) -> float:
        """The experiment timeout, s: the configured one, else derived from the run's estimate.

        Derived as TIMEOUT_ESTIMATE_FACTOR x estimate + TIMEOUT_SLACK_S, so a run slower than
        guessed is not killed, while a hung one still is. The estimate is
        `study.run_duration.estimate_run(config).total_s`, the one duration model of offline
        and serving runs (stages summed, find_max_rate at its most probes).
        """
        if self.experiment_timeout_s is not None:
            return self.experiment_timeout_s
        return math.ceil(TIMEOUT_ESTIMATE_FACTOR * estimated_run_s + TIMEOUT_SLACK_S)


class StudyConfig(BaseModel):
    """A whole study. Build it with `load_study(path)`; `expand(study)` gives the runs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Study name; the study folder starts with it.")
    output_dir: str = Field("llem-results", min_length=1, description="Where study folders go.")
    offline: bool = Field(
        False,
        description="Fetch nothing: hub models and datasets must be in a cache already. (An "
        "experiment never has a network; online, the pre-flight fetches what is missing.)",
    )
    images: dict[Backend, str] = Field(
        default_factory=default_images, description="Image reference per backend."
    )
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    base: str | None = Field(None, description="Base file as written, relative to the study file.")
    base_defaults: dict[str, Any] = Field(
        default_factory=dict, description="Experiment defaults read from the base file."
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="The study file's top-level experiment keys."
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted key -> values; the grid is their product."
    )
    experiments: list[dict[str, Any]] = Field(
        default_factory=list, description="Explicit experiments, each merged over the defaults."
    )
    search: SearchConfig | None = Field(
        None, description="A search over `search.space` instead of (within) the grid."
    )
    source_path: Path | None = Field(None, exclude=True, description="The study file.")
    source_text: str | None = Field(None, exclude=True, description="Its text, as read.")
    base_path: Path | None = Field(None, exclude=True, description="The base file, if any.")
    base_text: str | None = Field(None, exclude=True)

    _source_map: SourceMap | None = PrivateAttr(None)
    _base_source_map: SourceMap | None = PrivateAttr(None)

    @field_validator("images", mode="before")
    @classmethod
    def _images_over_defaults(cls, value: Any) -> Any:
        # Naming one backend's image keeps the defaults of the others.
        if isinstance(value, dict):
            return {**default_images(), **value}
        return value

    @field_validator("sweep", mode="before")
    @classmethod
    def _normalise_sweep(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return flatten_sweep(value)
        return value

    @model_validator(mode="after")
    def _non_empty_dimensions(self) -> StudyConfig:
        for key, values in self.sweep.items():
            if not values:
                raise ValueError(f"sweep.{key} is an empty list: give at least one value")
        return self

    @property
    def source_map(self) -> SourceMap | None:
        """Lines of the study file's keys, when it was read from a file."""
        return self._source_map

    @property
    def base_source_map(self) -> SourceMap | None:
        return self._base_source_map

    def attach_sources(self, study_map: SourceMap, base_map: SourceMap | None) -> None:
        """Called by the loader: keep the line maps for file:line messages during expansion."""
        self._source_map = study_map
        self._base_source_map = base_map

    def with_execution(
        self, *, executor: str | None = None, no_gaps: bool = False, **changes: Any
    ) -> StudyConfig:
        """This study with some execution settings replaced (validated), e.g. from the command
        line's --cycles/--order/--executor/--no-gaps; None values leave a setting as the file
        has it."""
        execution = self.execution
        changes = {key: value for key, value in changes.items() if value is not None}
        if changes:
            try:
                execution = ExecutionConfig.model_validate({**execution.model_dump(), **changes})
            except ValidationError as error:
                raise UserError(
                    f"execution override {changes}: {error.errors()[0]['msg']}"
                ) from None
            execution._sections = self.execution._sections
        if executor is not None:
            execution = execution.with_executor(executor)
        if no_gaps:
            execution = execution.without_gaps()
        if execution is self.execution:
            return self
        copy = self.model_copy(update={"execution": execution})
        copy.attach_sources(self._source_map, self._base_source_map)  # type: ignore[arg-type]
        return copy

    def as_document(self) -> dict[str, Any]:
        """The study as a study file says it: the study folder's copy of a study built in
        Python (the base file's defaults merged in)."""
        document: dict[str, Any] = {
            "name": self.name,
            "output_dir": self.output_dir,
            "offline": self.offline,
        }
        defaults = default_images()
        images = {b: ref for b, ref in self.images.items() if defaults.get(b) != ref}
        if images:
            document["images"] = images
        execution = self.execution.model_dump(mode="json", exclude_defaults=True)
        if execution:
            document["execution"] = execution
        document.update(deep_merge(self.base_defaults, self.defaults))
        if self.sweep:
            document["sweep"] = self.sweep
        if self.experiments:
            document["experiments"] = self.experiments
        if self.search is not None:
            document["search"] = self.search.model_dump(mode="json", exclude_defaults=True)
        return document

    def image_for(self, backend: str) -> str:
        return self.images[backend]  # type: ignore[index]
