"""Records of the study manifest: one per run plus the study's own state.

The journal that stores them (append-only, fsync'd) lives in `study/manifest.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.config.search import SearchBudget
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.workdir import RUN_ID_PATTERN
from llenergymeasure.study.gpu_records import GpuSettingRecord

RunStatus = Literal["pending", "running", "completed", "failed", "interrupted"]
Outcome = Literal[
    "completed",  # exit 0 with a valid result.json
    "failed",  # error.json written, or an invalid/missing result
    "killed_timeout",  # SIGKILL after experiment_timeout_s
    "killed_stall",  # SIGKILL after stall_timeout_s without a progress event
    "killed_oom",  # exit 137 with State.OOMKilled
    "crashed",  # any other exit: code and last log lines recorded
    "interrupted",  # stopped by Ctrl+C / SIGTERM
]
StudyStatus = Literal["running", "completed", "interrupted", "failed"]


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(pattern=RUN_ID_PATTERN)
    run_index: int
    config_hash: str
    cycle: int
    backend: str
    status: RunStatus = "pending"
    outcome: Outcome | None = None
    attempts: int = Field(0, description="Times a container was started for this run.")
    image_ref: str | None = None
    image_id: str | None = None
    image_digest: str | None = None
    container_id: str | None = None
    started_at: str | None = Field(None, description="UTC, ISO 8601.")
    finished_at: str | None = Field(None, description="UTC, ISO 8601.")
    duration_s: float | None = None
    exit_code: int | None = None
    error_type: str | None = None
    error: str | None = None
    log_tail: str | None = Field(None, description="Last lines of container.log on a crash.")
    result_path: str | None = Field(None, description="result.json, relative to the study dir.")
    gpu_indices: list[int] = Field(default_factory=list, description="The slot's host GPUs.")
    gpu_uuids: list[str] = Field(
        default_factory=list, description="Their physical UUIDs, where the host's NVML named them."
    )
    cpuset: str | None = Field(None, description="Host CPUs the container was pinned to.")
    concurrent_runs: list[str] = Field(
        default_factory=list, description="Runs whose containers overlapped this one's in time."
    )
    node: str | None = Field(None, description="Host the container ran on (a cluster node).")
    executor_job_id: str | None = Field(
        None, description="The executor's job id (e.g. <array id>_<task>), once submitted."
    )
    foreign_gpu_processes: list[int] = Field(
        default_factory=list,
        description="Host PIDs of processes not of this study on the slot's GPUs at its start.",
    )
    no_gaps: bool = Field(
        False, description="Started without the gap and cool-down before it (--no-gaps)."
    )
    gpu_off_default: list[str] = Field(
        default_factory=list,
        description="Its GPUs whose power limit was not the driver's default at its start, with "
        "no change of llem's to explain it.",
    )
    gpu_settings: list[GpuSettingRecord] = Field(
        default_factory=list,
        description="The `gpu:` settings set on its GPUs: before, asked, effective, restored.",
    )

    def with_host_findings(self, result: ExperimentResult) -> ExperimentResult:
        """The container's result with what only the host saw, from this record: runs that
        shared the host with it, foreign processes on its GPUs at its start. result.json has one
        writer (the container); these are merged wherever a result is loaded."""
        if self.concurrent_runs:
            result = result.with_host_shared(self.concurrent_runs)
        if self.foreign_gpu_processes:
            result = result.with_host_warning(
                "foreign_gpu_processes",
                f"process(es) {self.foreign_gpu_processes} not of this study were on its GPU(s) "
                "when it started",
            )
        if self.gpu_off_default:
            result = result.with_host_warning("gpu_off_default", "; ".join(self.gpu_off_default))
        clamped = [r for r in self.gpu_settings if r.clamped]
        if clamped:
            result = result.with_host_warning(
                "gpu_setting_clamped",
                "; ".join(
                    f"GPU {r.index}: power limit {r.power_limit_w_requested:g} W asked, the "
                    f"driver set {r.power_limit_w_effective:g} W"
                    for r in clamped
                ),
            )
        return result


class TrialRecord(BaseModel):
    """One trial a search's sampler asked for, in the order asked: what it suggested and which
    run measures it. The sampler is rebuilt from these lines alone (`--resume`)."""

    model_config = ConfigDict(extra="forbid")

    cell: int = Field(ge=0, description="The combination of the study's sweep it searches in.")
    number: int = Field(ge=0, description="The sampler's trial number in its cell (ask order).")
    params: dict[str, Any] = Field(description="Searched key -> suggested value.")
    sampler_attrs: dict[str, Any] = Field(
        default_factory=dict, description="The sampler's own notes on the trial (e.g. grid id)."
    )
    config_hash: str | None = Field(None, description="None: the contract rejected it.")
    run_id: str | None = Field(None, description="The run that measures it.")
    run_index: int | None = None
    reused: bool = Field(
        False, description="Its configuration had run before: that run's result is told."
    )
    rejected: str | None = Field(
        None, description="Why the contract rejected the combination (no container started)."
    )


class ConfirmRecord(BaseModel):
    """A fresh run of a configuration a search already ran: in its race (the confirmation of a
    cell's best configurations, after its search stopped) or to re-measure a new incumbent
    before the search trusts it."""

    model_config = ConfigDict(extra="forbid")

    cell: int = Field(ge=0)
    params: dict[str, Any]
    config_hash: str
    run_id: str
    run_index: int
    cycle: int = Field(ge=1, description="The configuration's fresh run; cycle 0 was its trial.")
    purpose: Literal["race", "remeasure"] = "race"
    round: int | None = Field(None, ge=1, description="The race's round (purpose race).")
    race: int = Field(
        0, ge=0, description="Which of the cell's races (purpose race): 1 after a reopening."
    )


class RaceRecord(BaseModel):
    """Where one round of a cell's race left it (`results.racing`): its leader, the candidates
    eliminated (cumulative, with why), settled and undecided, the race runs so far, and why it
    ended, if it did. Replayed as recorded on --resume."""

    model_config = ConfigDict(extra="forbid")

    cell: int = Field(ge=0)
    round: int = Field(ge=0, description="0: the candidates chosen, before any run.")
    candidates: list[str] = Field(description="Config hashes, best search value first.")
    leader: str | None = None
    eliminated: dict[str, str] = Field(default_factory=dict)
    equivalent: list[str] = Field(default_factory=list)
    front: list[str] = Field(
        default_factory=list, description="Several objectives: settled trade-offs of the leader."
    )
    undecided: list[str] = Field(default_factory=list)
    runs: int = Field(0, ge=0, description="Race runs with an outcome so far.")
    next: list[str] = Field(
        default_factory=list, description="Who runs in the next round (none: it ended)."
    )
    ended: str | None = Field(None, description="Why the race ended: settled, or its budget.")
    race: int = Field(
        0, ge=0, description="Which of the cell's races: a search reopened races again (1, 2...)."
    )


class WarmRecord(BaseModel):
    """A trial of an earlier search told to a cell's sampler before its first ask
    (`search.warm_start`): recorded once, replayed on --resume without reading the folder
    again."""

    model_config = ConfigDict(extra="forbid")

    cell: int = Field(ge=0)
    study_id: str = Field(description="The earlier study's folder name.")
    run_id: str = Field(description="Its run that measured the trial.")
    params: dict[str, Any]
    config_hash: str
    values: list[float] = Field(description="Told objective values (this search's judgement).")
    violations: list[float] = Field(description="Told constraint violations: > 0 violated.")
    feasible: bool


class SliceRecord(BaseModel):
    """What an offline trial's pruner was told as its window ran (`search.pruner`: median,
    successive_halving, hyperband): the objective at each slice reached, and, for a trial it
    stopped, why. Written once, when the run ends or is stopped; replayed on --resume so the
    pruner sees what it saw, and never decides again for a recorded run."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    values: dict[int, float] = Field(description="Slice (1..10) -> the objective so far.")
    pruned: str | None = Field(None, description="Why the pruner stopped the trial, if it did.")


class BudgetRecord(BaseModel):
    """A search resumed with another budget: the budget from then on, and the cells whose stop
    it no longer justified (reopened: they ask again and race again)."""

    model_config = ConfigDict(extra="forbid")

    at: str = Field(description="UTC, ISO 8601.")
    budget: SearchBudget
    before: SearchBudget
    reopened: list[int] = Field(default_factory=list)

    def text(self) -> str:
        reopened = ", ".join(map(str, self.reopened)) or "none"
        return f"{self.at}: {self.budget.changes_from(self.before)}; cells reopened: {reopened}"


class SearchRecord(BaseModel):
    """What a search asked, confirmed and why each cell stopped asking."""

    model_config = ConfigDict(extra="forbid")

    trials: list[TrialRecord] = Field(default_factory=list)
    confirms: list[ConfirmRecord] = Field(default_factory=list)
    races: list[RaceRecord] = Field(default_factory=list)
    stopped: dict[int, str] = Field(
        default_factory=dict, description="Cell -> why its search stopped asking."
    )
    budgets: list[BudgetRecord] = Field(
        default_factory=list, description="Each change of the search's budget, in order."
    )
    warm: list[WarmRecord] = Field(
        default_factory=list, description="Earlier searches' trials told before the first ask."
    )
    slices: dict[str, SliceRecord] = Field(
        default_factory=dict, description="Run id -> what its trial's pruner was told."
    )

    def budget(self, planned: SearchBudget) -> SearchBudget:
        """The budget in effect: the latest change's, else the plan's."""
        return self.budgets[-1].budget if self.budgets else planned

    def race_number(self, cell: int) -> int:
        """The cell's current race: how many times a budget change reopened it."""
        return sum(cell in change.reopened for change in self.budgets)

    def current_race(self, cell: int) -> tuple[list[RaceRecord], list[ConfirmRecord]]:
        """The cell's current race: its rounds and its runs (an earlier race a reopening
        superseded is in neither)."""
        number = self.race_number(cell)
        rounds = [r for r in self.races if (r.cell, r.race) == (cell, number)]
        runs = [c for c in self.confirms if (c.cell, c.race, c.purpose) == (cell, number, "race")]
        return rounds, runs


class StudyRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    study_id: str
    study_name: str
    design_hash: str
    created_at: str
    status: StudyStatus = "running"
    llem_version: str
    source_dir: str | None = Field(
        None,
        description="Folder of the study file as given: relative model and prompt paths in it "
        "resolve from here, also when the study folder's copy is run again.",
    )
    executor: str = Field(
        "local", description="The executor of its latest invocation (execution.executor.kind)."
    )
    runs: dict[str, RunRecord] = Field(default_factory=dict, description="run_id -> record.")
    search: SearchRecord | None = Field(None, description="A search study's trials.")
