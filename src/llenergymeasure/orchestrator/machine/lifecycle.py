"""The machine under a run has one owner: this per-run host lifecycle, which the local executor
and every cluster node call alike. The scheduler decides what runs when and never touches a GPU.

For one run, on the host it executes on, under the host locks of its GPUs (held by the caller:
the study's pre-flight locally, the node for its allocation on a cluster), in this order:

1. **Leftovers put back.** A change an earlier llem made to one of the run's GPUs and did not
   put back (it was killed with -9, or its put-back failed) is in the host-wide ledger
   (`gpu_ledger.py`): it is put back first, before anything is read, so the run never measures
   on, nor records as its "before", another run's setting. It is put back even with another
   process on the GPU: it undoes llem's own change, returning the GPU to what its other users
   had before llem touched it. A leftover that cannot be put back refuses the run.
2. **Foreign processes.** PIDs computing on the run's GPUs now are none of its study's (the slot
   is free), so foreign: `execution.foreign_gpu_processes: error` refuses the run, `warn`
   records them (its energy is then not its alone: the result says so).
3. **Off its default.** A GPU whose power limit is not the driver's default, with no ledger
   entry to explain it (an administrator, another tool), is recorded with the run (the warning
   `gpu_off_default`); `execution.gpu_off_default: error` refuses the run instead.
4. **Settings.** The run's `gpu:` settings are recorded in the ledger, then set, then read
   back; never on a GPU with another process on it (that process would run under them): such a
   run is refused, whatever the foreign-process policy.
5. **The container**, as the executor runs it (started here, watched to its end).
6. **Settings put back**, whatever ended the container (a put-back that fails keeps its ledger
   entry: the next run on that GPU, or `llem gpus restore`, puts it back).

A refused run starts no container: it ends with the refusal as its error (`HostFindings`), and
the executor hands that back like any other ending. CPU runs (no GPUs) skip 1-4 and 6 and need
no NVML.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.orchestrator.machine.container import ContainerExit
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger, LedgerUnreadable
from llenergymeasure.orchestrator.machine.gpu_settings import (
    GpuControl,
    GpuKeeper,
    GpuSettingError,
    host_control,
)
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.study.gpu_records import GpuSettingRecord

Policy = Literal["error", "warn"]


@dataclass(frozen=True)
class HostRun:
    """What the machine needs of a run: who it is, its GPUs (host indices) and `gpu:`
    settings, and the study's policies for what it finds on them."""

    study_id: str
    run_id: str
    gpus: tuple[int, ...]
    settings: GpuSettings
    foreign_gpu_processes: Policy = "warn"
    gpu_off_default: Policy = "warn"


class Refusal(BaseModel):
    """Why the run was not started (no container): its error type and message, and whether
    the cause is this machine's rather than the run's (`stops_study`: nothing can run safely
    here until it is fixed; the run is `interrupted` and runs again on --resume)."""

    model_config = ConfigDict(extra="forbid")

    error_type: str
    message: str
    hint: str | None = Field(None, description="The fix, where the machine's cause has one.")
    stops_study: bool = False


class HostFindings(BaseModel):
    """What the machine did and saw around one run: recorded with it in the manifest."""

    model_config = ConfigDict(extra="forbid")

    foreign_gpu_processes: list[int] = Field(default_factory=list)
    gpu_off_default: list[str] = Field(
        default_factory=list, description="GPUs off the driver's default with no llem change."
    )
    gpu_settings: list[GpuSettingRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="What the display says of it.")
    refused: Refusal | None = None


class Machine:
    """This host as runs use it: its GPU control (NVML, opened when a run first needs it and
    shared by the runs of one llem), the host-wide ledger and the host probes."""

    def __init__(
        self,
        probes: HostProbes,
        control: GpuControl | None = None,
        ledger: GpuLedger | None = None,
        open_control: Callable[[], GpuControl] = host_control,
    ) -> None:
        self.probes = probes
        self.ledger = ledger if ledger is not None else GpuLedger()
        self._control = control
        self._open_control = open_control
        self._opening = threading.Lock()

    def control(self) -> GpuControl:
        """The GPU control, opened once (GpuSettingError where NVML cannot be opened)."""
        with self._opening:
            if self._control is None:
                self._control = self._open_control()
            return self._control

    def run(
        self, run: HostRun, container: Callable[[], ContainerExit]
    ) -> tuple[ContainerExit, HostFindings]:
        """The lifecycle above; `container` runs the run's container to its end."""
        started = time.time()
        findings = HostFindings()
        if not run.gpus:
            return container(), findings
        gpus = list(run.gpus)
        keeper: GpuKeeper | None = None
        try:
            keeper = self._before_container(run, gpus, findings)
        except GpuSettingError as error:
            findings.refused = Refusal(error_type="GpuSettings", message=str(error))
        except LedgerUnreadable as error:  # no GPU of this host can be trusted to be as found
            findings.refused = Refusal(
                error_type="GpuLedger", message=error.message, hint=error.hint, stops_study=True
            )
        if findings.refused is not None:
            return ContainerExit(None, None, False, None, started, time.time()), findings
        try:
            return container(), findings
        finally:
            if keeper is not None and findings.gpu_settings:
                try:
                    findings.gpu_settings = keeper.put_back(findings.gpu_settings)
                except GpuSettingError as error:
                    findings.notes.append(str(error))
                    findings.gpu_settings = [
                        record.model_copy(update={"restored": False})
                        for record in findings.gpu_settings
                    ]

    def _before_container(
        self, run: HostRun, gpus: list[int], findings: HostFindings
    ) -> GpuKeeper | None:
        """Steps 1-4; sets `findings.refused` where the run must not start. The keeper that
        set the run's GPUs (None where nothing was set)."""
        keeper = self._keeper_for(run, findings)
        if keeper is not None:
            for entry in keeper.put_back_leftovers(gpus):
                findings.notes.append(f"put back what an earlier llem left: {entry.describe()}")
        foreign = self.probes.foreign_processes(run.gpus)
        findings.foreign_gpu_processes = foreign
        if foreign and run.foreign_gpu_processes == "error":
            return self._refuse(
                findings,
                "ForeignGpuProcesses",
                f"process(es) {foreign} not of this study were on GPU(s) {gpus}; not started "
                "(execution.foreign_gpu_processes: error)",
            )
        if keeper is None:
            return None
        findings.gpu_off_default = keeper.off_default(gpus)
        if findings.gpu_off_default and run.gpu_off_default == "error":
            return self._refuse(
                findings,
                "GpuOffDefault",
                "; ".join(findings.gpu_off_default)
                + "; not started (execution.gpu_off_default: error)",
            )
        if not run.settings.any:
            return None
        if foreign:
            return self._refuse(
                findings,
                "GpuBusy",
                f"process(es) {foreign} not of this study compute on GPU(s) {gpus}: llem never "
                "changes a GPU's settings under another process; not started",
            )
        findings.gpu_settings = keeper.apply(run.study_id, run.run_id, gpus, run.settings)
        return keeper

    @staticmethod
    def _refuse(findings: HostFindings, error_type: str, message: str) -> None:
        findings.refused = Refusal(error_type=error_type, message=message)

    def _keeper_for(self, run: HostRun, findings: HostFindings) -> GpuKeeper | None:
        """The keeper of the run's GPUs. Where NVML cannot be opened, a run with nothing to
        set and nothing to put back goes on without the checks that need it (said in its
        notes); one with either cannot (GpuSettingError)."""
        try:
            return GpuKeeper(self.control(), self.ledger)
        except GpuSettingError as error:
            if run.settings.any or self.ledger.entries():
                raise
            findings.notes.append(f"GPU power limits not checked against their defaults: {error}")
            return None
