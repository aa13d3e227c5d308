"""`llem run --resume` of a GPU study in a process of its own, on in-memory GPUs, for tests that
kill it (`tests/integration/test_fault_injection_gpu.py`).

    python gpu_study_process.py STUDY_YAML STORE LOCK_DIR SEED [--retry-failed] [--die-at N:WHEN]

No GPU here, and a container cannot be given one, so the measurement is what is simulated: each
run's "container" is a sleep of a random length (seeded by SEED) that ends with a valid
result.json, or early when the run is stopped. Everything around it is llem's own, in this
process as in `llem run`: `study_run.execute` (the study folder found or resumed, its writer
lock, the manifest, the signal handlers, the scheduler and collector) and, around each run, the
per-run host lifecycle (`Machine`) on the GPUs whose state `STORE` holds (`InMemoryGpu`), with
the host-wide ledger and the GPU locks in LOCK_DIR. The pre-flight is the one part built here:
it resolves no image and asks no engine, and holds the lock of GPU 0 as `llem run`'s would.

`--die-at N:before` (or `N:after`): the process kills itself with SIGKILL just before its N-th
GPU setting lands (or just after), an instant no outside kill can aim at.

`--signal-at-open SIG`: the process sends itself SIG just after the study folder is opened
(its manifest marked running), before the study loop starts: another instant no outside
signal can aim at.

Exits as `llem run` does: 0, 1, 130, and 2 with one message for a UserError.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder: `helpers`

from helpers.gpus import InMemoryGpu
from helpers.results import Figures, make_result
from helpers.scheduler import HeldExecutor
from llenergymeasure.config.loader import load_study
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.executors.base import RunJob
from llenergymeasure.orchestrator.machine.container import ContainerExit, KillReason
from llenergymeasure.orchestrator.machine.container_user import (
    ContainerLimits,
    ContainerUser,
)
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.gpu_settings import GpuControl
from llenergymeasure.orchestrator.machine.locks import HostLocks
from llenergymeasure.orchestrator.planned import planned_study
from llenergymeasure.orchestrator.schedule import study_run
from llenergymeasure.orchestrator.schedule.preflight import Preflight, RunOptions
from llenergymeasure.study import work_files
from llenergymeasure.study.hashing import design_hash

CONTAINER_S = (0.1, 0.8)  # how long a simulated container runs


class SleepingExecutor(HeldExecutor):
    """Each job's lifecycle in a thread of its own (as the local executor's), around a
    simulated container: a sleep of a random length, then a valid result.json (exit 0); a
    cancel ends it at once as a stopped container ends (exit 137, killed for the interrupt)."""

    rng = random.Random(0)

    def start(self, job: RunJob) -> None:
        self.started.append(job)
        run_id = job.run.run_id
        stopped = self.held[run_id] = threading.Event()
        self.running.add(run_id)
        seconds = self.rng.uniform(*CONTAINER_S)

        def container() -> ContainerExit:
            began = time.time()
            if stopped.wait(seconds):
                return ContainerExit(
                    "simulated", 137, False, KillReason.INTERRUPT, began, time.time()
                )
            request = RunRequest.model_validate_json((job.workdir / WorkPaths.CONFIG).read_bytes())
            result = make_result(request.context, job.run.config, Figures(tokens_per_s=100.0))
            work_files.write(job.workdir, WorkPaths.RESULT, result)
            return ContainerExit("simulated", 0, False, None, began, time.time())

        def lifecycle() -> None:
            self.end(job, container)
            self.running.discard(run_id)

        threading.Thread(target=lifecycle, name=f"run-{run_id}", daemon=True).start()


class DyingGpu(InMemoryGpu):
    """An in-memory GPU whose process dies (SIGKILL) at its `die_at` setting: (N, "before")
    or (N, "after") it lands."""

    die_at: tuple[int, str] | None = None
    settings = 0

    def _may(self, what: str) -> None:
        super()._may(what)
        DyingGpu.settings += 1
        self._die_if("before")

    def _land(self, what: str, **fields: object) -> None:
        super()._land(what, **fields)
        self._die_if("after")

    def _die_if(self, when: str) -> None:
        if self.die_at == (DyingGpu.settings, when):
            os.kill(os.getpid(), signal.SIGKILL)


class NoEngine:
    """The pre-flight's engine client: there is none to close."""

    def close(self) -> None:
        pass


def main(argv: list[str]) -> int:
    study_file, store, lock_dir, seed = Path(argv[0]), Path(argv[1]), Path(argv[2]), int(argv[3])
    SleepingExecutor.rng = random.Random(seed)
    if "--die-at" in argv:
        count, _, when = argv[argv.index("--die-at") + 1].partition(":")
        DyingGpu.die_at = (int(count), when)
    study = load_study(study_file)
    planned = planned_study(study_file, study)
    options = RunOptions(resume=True, retry_failed="--retry-failed" in argv, lock_dir=lock_dir)
    locks = HostLocks([0], study.name, lock_dir).acquire()
    pre = Preflight(
        planned=planned,
        design_hash=design_hash(study),
        client=NoEngine(),  # type: ignore[arg-type]
        locks=locks,
        images={"pytorch": ResolvedImage("simulated", "sha256:" + "0" * 64, None)},
        user=ContainerUser.for_invoker("10001:10001"),  # as the unit tests' pre-flight
        limits=ContainerLimits(None),
        cpu_groups=None,
        gpu_uuids={0: "GPU-0"},
        gpu_control=GpuControl(DyingGpu.load(store)),
    )
    # `execute` as `llem run` calls it; only the executor it looks up is the simulated one
    study_run.executor_class = lambda kind: SleepingExecutor  # type: ignore[assignment]
    if "--signal-at-open" in argv:
        sig = signal.Signals[argv[argv.index("--signal-at-open") + 1]]
        opened = study_run.open_study

        def open_then_signal(*args: object, **kwargs: object) -> object:
            folder = opened(*args, **kwargs)  # type: ignore[arg-type]
            os.kill(os.getpid(), sig)
            return folder

        study_run.open_study = open_then_signal  # type: ignore[assignment]
    return study_run.execute(pre, options, Display()).exit_code


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UserError as error:  # as `llem` ends on one: one message, exit 2
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"  fix: {error.hint}", file=sys.stderr)
        sys.exit(error.exit_code)
