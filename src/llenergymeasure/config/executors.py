"""Where a study's runs execute: one settings model per executor, and the table of them.

`execution.executor` is one of these (a union told apart by `kind`). A study file names an
executor by its kind (`executor: slurm`), optionally with its settings in a section of the
same name (`slurm: {partition: gpu}`), or writes the settings inline (`executor: {kind: slurm,
partition: gpu}`). Sections of executors the study does not choose are checked and kept, so
`--executor` can choose another. Each model names the class that implements it on the host
(`implementation`, imported only when a study runs on it): a new executor is one model here
and its own package under `orchestrator/`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails

from llenergymeasure.errors import UserError


class LocalSettings(BaseModel):
    """Containers on this host's engine, `execution.max_parallel` at once on disjoint slots."""

    model_config = ConfigDict(extra="forbid")
    implementation: ClassVar[str] = "llenergymeasure.orchestrator.executors.local:LocalExecutor"

    kind: Literal["local"] = "local"

    def describe(self, engine: str) -> str:
        return f"runs on this host's {engine} engine"


class SlurmSettings(BaseModel):
    """How a study runs on a Slurm cluster (`execution.executor: slurm`): one job per run."""

    model_config = ConfigDict(extra="forbid")
    implementation: ClassVar[str] = (
        "llenergymeasure.orchestrator.executors.slurm.executor:SlurmExecutor"
    )

    kind: Literal["slurm"] = "slurm"

    partition: str | None = Field(None, description="sbatch --partition; unset: the default.")
    account: str | None = Field(None, description="sbatch --account.")
    qos: str | None = Field(None, description="sbatch --qos.")
    time_limit_min: int | None = Field(
        None,
        ge=1,
        description="sbatch --time, minutes; unset: the run's timeout plus its gap plus a "
        "margin, so llem's own timeout fires first.",
    )
    gres: str = Field(
        "gpu",
        min_length=1,
        description="GRES name of a GPU: a run with gpu_count k asks --gres "
        "<gres>:k (e.g. gpu:a100 for a typed GRES).",
    )
    exclusive: bool = Field(
        True, description="sbatch --exclusive: energy is measured on a quiet node."
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="More sbatch arguments, as given (e.g. --constraint=h100).",
    )
    llem_command: list[str] | None = Field(
        None,
        min_length=1,
        description="How a compute node starts llem, e.g. [/shared/venv/bin/llem]; unset: the "
        "Python running this llem, `-m llenergymeasure` (a shared venv).",
    )
    max_concurrent_jobs: int | None = Field(
        None, ge=1, description="Most jobs of the study running at once (the array's %cap)."
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="Submissions of one run at most when Slurm loses it (NODE_FAIL, PREEMPTED, "
        "BOOT_FAIL: submitted again).",
    )
    poll_s: float = Field(2.0, gt=0, description="How often squeue is asked while attached, s.")
    probe_paths: bool = Field(
        True,
        description="Before submitting, one short job checks that the study folder and the "
        "local inputs are on a filesystem the compute nodes share.",
    )

    def describe(self, engine: str) -> str:
        settings = [
            f"partition {self.partition}" if self.partition else "the default partition",
            *([f"account {self.account}"] if self.account else []),
            *([f"qos {self.qos}"] if self.qos else []),
            "exclusive nodes" if self.exclusive else "shared nodes",
            *([f"at most {self.max_concurrent_jobs} at once"] if self.max_concurrent_jobs else []),
        ]
        return f"runs as Slurm jobs ({', '.join(settings)}), {engine} on the nodes"


ExecutorSettings = Annotated[LocalSettings | SlurmSettings, Field(discriminator="kind")]
EXECUTORS: dict[str, type[LocalSettings] | type[SlurmSettings]] = {
    "local": LocalSettings,
    "slurm": SlurmSettings,
}


def require_kind(kind: str) -> type[LocalSettings] | type[SlurmSettings]:
    """The settings model of executor `kind`; UserError naming the kinds there are."""
    model = EXECUTORS.get(kind)
    if model is None:
        raise UserError(
            f"executor {kind!r}: not an executor", hint=f"one of {', '.join(EXECUTORS)}"
        )
    return model


def settings_for(kind: str, section: dict[str, Any] | None = None) -> LocalSettings | SlurmSettings:
    """The settings of executor `kind` from its section (UserError for an unknown kind)."""
    return require_kind(kind).model_validate({**(section or {}), "kind": kind})


def split_sections(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """An execution mapping as written -> (the mapping with `executor` as one settings mapping,
    the checked sections of every executor it names). A section's problem keeps its place
    (`slurm.partition`) so the loader names its line."""
    data = dict(data)
    sections: dict[str, dict[str, Any]] = {}
    for kind, model in EXECUTORS.items():
        if kind not in data:
            continue
        section = data.pop(kind)
        try:
            checked = model.model_validate({**(section or {}), "kind": kind})
        except ValidationError as error:
            raise ValidationError.from_exception_data(
                error.title, [_under(kind, detail) for detail in error.errors()]
            ) from None
        sections[kind] = checked.model_dump(exclude={"kind"}, exclude_defaults=True)
    chosen = data.get("executor", "local")
    if isinstance(chosen, str):  # an unknown kind is named by the union's own error
        data["executor"] = {**sections.get(chosen, {}), "kind": chosen}
    return data, sections


def _under(kind: str, detail: Any) -> InitErrorDetails:
    moved: dict[str, Any] = {
        "type": detail["type"],
        "loc": (kind, *detail["loc"]),
        "input": detail["input"],
    }
    if "ctx" in detail:
        moved["ctx"] = detail["ctx"]
    return moved  # type: ignore[return-value]
