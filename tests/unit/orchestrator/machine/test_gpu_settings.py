"""GPU settings as study keys: set on exactly the run's GPUs before it starts, read back, put
back on every exit path (completed, Ctrl+C, an unexpected error, a restart after kill -9), with
the NVML calls behind `GpuControl` and an in-memory device standing in for it (unit tests only;
the real calls run where a GPU is lent: tests/gpu)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.gpus import InMemoryGpus
from helpers.scheduler import HeldExecutor, InstantExecutor, make_scheduler
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.orchestrator.machine.gpu_settings import (
    PERMISSION_HINT,
    GpuKeeper,
    GpuSettingError,
    check_settings,
    restore_leftovers,
)
from llenergymeasure.study.gpu_ledger import Ledger
from llenergymeasure.study.hashing import config_hash

LIMITS = {"gpu.power_limit_w": [200.0, 300.0]}


def _no_tables(scheduler) -> None:
    scheduler.collector.finish_study = lambda learned=False: []


class Watching(InstantExecutor):
    """Notes each run's GPU 0 power limit as its container would have seen it."""

    seen: list[float]
    gpus: InMemoryGpus

    def start(self, job) -> None:
        self.seen.append(self.gpus.power_limit_w(0))
        super().start(job)


def test_a_power_limit_sweep_sets_each_run_and_puts_the_gpu_back(tmp_path: Path) -> None:
    gpus = InMemoryGpus.of(1)
    Watching.seen, Watching.gpus = [], gpus
    scheduler, _ = make_scheduler(
        tmp_path,
        {"gpu_ids": [0], "gap_between_experiments_s": 0},
        sweep=LIMITS,
        executor=Watching,
        gpu_control=gpus,
    )
    _no_tables(scheduler)
    scheduler.run()
    assert Watching.seen == [200.0, 300.0]
    assert gpus.power_limit_w(0) == 350.0  # as it was
    records = [r.gpu_settings for r in scheduler.manifest.record.runs.values()]
    assert [(r[0].power_limit_w_before, r[0].power_limit_w_requested) for r in records] == [
        (350.0, 200.0),
        (350.0, 300.0),
    ]
    assert all(
        r[0].restored
        and r[0].power_limit_w_effective == r[0].power_limit_w_requested
        and not r[0].clamped
        and r[0].uuid == "GPU-0"
        for r in records
    )
    assert Ledger(scheduler.study_dir).outstanding() == []


def test_ctrl_c_puts_the_gpu_back(tmp_path: Path) -> None:
    gpus = InMemoryGpus.of(1)
    scheduler, executor = make_scheduler(
        tmp_path, {"gpu_ids": [0]}, sweep=LIMITS, executor=HeldExecutor, gpu_control=gpus
    )
    original = executor.start

    def start_then_stop(job) -> None:
        original(job)
        assert gpus.power_limit_w(0) == 200.0
        scheduler.stop.request()

    executor.start = start_then_stop  # type: ignore[method-assign]
    scheduler.run()
    assert gpus.power_limit_w(0) == 350.0
    assert Ledger(scheduler.study_dir).outstanding() == []


def test_an_unexpected_error_puts_the_gpu_back(tmp_path: Path) -> None:
    gpus = InMemoryGpus.of(1)
    scheduler, executor = make_scheduler(
        tmp_path, {"gpu_ids": [0]}, sweep=LIMITS, executor=HeldExecutor, gpu_control=gpus
    )

    def broken_wait(timeout_s: float) -> list:
        raise RuntimeError("a bug")

    executor.wait = broken_wait  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        scheduler.run()
    assert gpus.power_limit_w(0) == 350.0 and gpus.gpus[0].locked is None


def test_after_kill_9_the_next_llem_puts_the_gpu_back_from_the_ledger(tmp_path: Path) -> None:
    gpus = InMemoryGpus.of(2)
    settings = GpuSettings(power_limit_w=250.0, locked_clocks_mhz=1410)
    GpuKeeper(gpus, Ledger(tmp_path)).apply("0000_abc_c0", [0, 1], settings)
    assert gpus.gpus[1].power_limit_w == 250.0 and gpus.gpus[1].locked == (1410, 1410)
    # llem is killed here: nothing put back; the ledger on disk says what to undo
    on_disk = json.loads((tmp_path / "gpu-settings").glob("*.json").__next__().read_text())
    assert [r["power_limit_w_before"] for r in on_disk] == [350.0, 350.0]
    notes: list[str] = []
    restored = restore_leftovers(tmp_path, notes.append, control=gpus)
    assert [r.index for r in restored] == [0, 1] and all(r.restored for r in restored)
    assert all(g.power_limit_w == 350.0 and g.locked is None for g in gpus.gpus.values())
    assert "0000_abc_c0" in notes[0]
    assert Ledger(tmp_path).outstanding() == []
    assert restore_leftovers(tmp_path, notes.append, control=gpus) == []  # nothing left


def test_the_ledger_is_written_before_the_gpu_is_touched(tmp_path: Path) -> None:
    seen: list[int] = []
    gpus = InMemoryGpus.of(1)
    gpus.before_set = lambda index, watts: seen.append(len(Ledger(tmp_path).outstanding()))
    GpuKeeper(gpus, Ledger(tmp_path)).apply("r", [0], GpuSettings(power_limit_w=200.0))
    assert seen == [1]


def test_a_failure_half_way_puts_back_what_was_set(tmp_path: Path) -> None:
    gpus = InMemoryGpus.of(2)
    gpus.gpus[1].power_range_w = (250.0, 400.0)  # 200 W refused on GPU 1
    keeper = GpuKeeper(gpus, Ledger(tmp_path))
    with pytest.raises(GpuSettingError, match="out of range"):
        keeper.apply("r", [0, 1], GpuSettings(power_limit_w=200.0))
    assert gpus.gpus[0].power_limit_w == 350.0
    assert Ledger(tmp_path).outstanding() == []


def test_a_clamped_limit_is_recorded_as_clamped(tmp_path: Path) -> None:
    gpus = InMemoryGpus.of(1, step_w=5.0)
    (record,) = GpuKeeper(gpus, Ledger(tmp_path)).apply("r", [0], GpuSettings(power_limit_w=303))
    assert (record.power_limit_w_effective, record.clamped) == (305.0, True)


def test_a_gpu_that_changed_identity_is_not_written_to(tmp_path: Path) -> None:
    gpus = InMemoryGpus.of(1)
    keeper = GpuKeeper(gpus, Ledger(tmp_path))
    keeper.apply("r", [0], GpuSettings(power_limit_w=200.0))
    gpus.gpus[0].uuid = "GPU-other"
    with pytest.raises(GpuSettingError, match="is now GPU-other"):
        keeper.restore("r")
    assert len(Ledger(tmp_path).outstanding()) == 1  # kept for a later try


def test_plan_time_checks_range_and_permission() -> None:
    gpus = InMemoryGpus.of(1)
    with pytest.raises(GpuSettingError, match="outside GPU 0's range 100-400 W"):
        check_settings(gpus, [0], [GpuSettings(power_limit_w=450.0)])
    with pytest.raises(GpuSettingError, match="outside GPU 0's supported clocks 210-1980"):
        check_settings(gpus, [0], [GpuSettings(locked_clocks_mhz=(300, 2100))])
    gpus.permitted = False
    with pytest.raises(GpuSettingError, match="no permission") as error:
        check_settings(gpus, [0], [GpuSettings(power_limit_w=200.0)])
    assert error.value.hint == PERMISSION_HINT
    check_settings(InMemoryGpus.of(1), [0], [GpuSettings(power_limit_w=200.0)])  # fine


def test_gpu_keys_in_the_config() -> None:
    assert GpuSettings(locked_clocks_mhz=1410).locked_clocks_mhz == (1410, 1410)
    with pytest.raises(ValueError, match="0 < min <= max"):
        GpuSettings(locked_clocks_mhz=(1500, 1400))
    with pytest.raises(ValueError, match="gpu_count is 0"):
        ExperimentConfig(model="m", gpu_count=0, gpu={"power_limit_w": 200})
    a = ExperimentConfig(model="m", gpu={"power_limit_w": 200})
    b = ExperimentConfig(model="m", gpu={"power_limit_w": 300})
    assert config_hash(a) != config_hash(b)


def _node_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus: InMemoryGpus, sweep: dict):
    """A Slurm node's run of a one-run study, its container replaced by a look at GPU 0."""
    from llenergymeasure.config.study import ExecutionConfig
    from llenergymeasure.orchestrator.executors.slurm import node as node_module
    from llenergymeasure.orchestrator.executors.slurm.batches import slurm_dir
    from llenergymeasure.orchestrator.executors.slurm.node_job import NodeJob, jobs_dir
    from llenergymeasure.orchestrator.machine.container import ContainerExit
    from llenergymeasure.orchestrator.machine.engine import ResolvedImage

    scheduler, _ = make_scheduler(tmp_path, {}, sweep=sweep)
    run = scheduler.source.queued[0]
    study_dir = scheduler.study_dir
    job = NodeJob(
        run=run,
        context=scheduler.ctx,
        image=ResolvedImage("img", "sha256:" + "1" * 64, None),
        timeout_s=5.0,
        stall_timeout_s=6.0,
        execution=ExecutionConfig(executor="slurm"),
    )
    job.write(jobs_dir(slurm_dir(study_dir)))
    monkeypatch.setenv("SLURM_JOB_GPUS", "0")
    from llenergymeasure.orchestrator.machine import gpu_settings

    for module in (node_module, gpu_settings):
        monkeypatch.setattr(module, "NvmlControl", lambda: gpus)
    monkeypatch.setattr(node_module, "gpu_uuids", lambda indices: {0: "GPU-0"})
    monkeypatch.setattr(node_module.NodeRun, "_wait_gap_and_cooldown", lambda *a: None)
    seen: list[float] = []

    def container(self, *args):
        seen.append(gpus.power_limit_w(0))
        return ContainerExit("c", 0, False, None, 0.0, 1.0)

    monkeypatch.setattr(node_module.NodeRun, "_run", container)
    node_run = node_module.NodeRun(study_dir, run.run_id)
    node_run.workdir.mkdir(parents=True)  # the submitter makes it
    return node_run, study_dir, seen


def test_a_slurm_node_sets_its_gpus_and_puts_them_back(tmp_path, monkeypatch) -> None:
    from llenergymeasure.orchestrator.executors.slurm.batches import slurm_dir
    from llenergymeasure.orchestrator.executors.slurm.node_job import jobs_dir, read_node_exit

    gpus = InMemoryGpus.of(1)
    node_run, study_dir, seen = _node_run(
        tmp_path, monkeypatch, gpus, {"gpu.power_limit_w": [250.0]}
    )
    node_run.execute()
    assert seen == [250.0] and gpus.power_limit_w(0) == 350.0
    exit_ = read_node_exit(jobs_dir(slurm_dir(study_dir)), node_run.job.run.run_id)
    (record,) = exit_.gpu_settings
    assert (record.power_limit_w_before, record.power_limit_w_effective, record.restored) == (
        350.0,
        250.0,
        True,
    )


def test_a_slurm_node_puts_back_what_a_killed_run_left_before_the_next(
    tmp_path, monkeypatch
) -> None:
    import os

    gpus = InMemoryGpus.of(1)
    node_run, study_dir, seen = _node_run(tmp_path, monkeypatch, gpus, {"n_prompts": [3]})
    left = GpuKeeper(gpus, Ledger(study_dir, os.uname().nodename))
    left.apply("0000_dead0000_c0", [0], GpuSettings(power_limit_w=150.0))  # then killed
    node_run.execute()  # a run without gpu settings
    assert seen == [350.0]  # it ran on the GPU as it was before the killed run
    assert Ledger(study_dir, os.uname().nodename).outstanding() == []


def test_llem_status_puts_back_what_a_killed_llem_left(tmp_path, monkeypatch) -> None:
    from helpers.cli import run_llem
    from llenergymeasure.orchestrator.machine import gpu_settings
    from llenergymeasure.orchestrator.machine.locks import writer_lock

    gpus = InMemoryGpus.of(1)
    monkeypatch.setattr(gpu_settings, "NvmlControl", lambda: gpus)
    scheduler, _ = make_scheduler(tmp_path, {})
    study = scheduler.study_dir
    GpuKeeper(gpus, Ledger(study)).apply("0000_dead0000_c0", [0], GpuSettings(power_limit_w=150))
    with writer_lock(study):  # an llem still runs the study: its settings are its own
        code, _, err = run_llem("status", str(study))
    assert code == 0 and "left for that llem" in err and gpus.power_limit_w(0) == 150.0
    code, _, err = run_llem("status", str(study))
    assert code == 0 and "1 GPU setting(s) put back" in err
    assert gpus.power_limit_w(0) == 350.0 and Ledger(study).outstanding() == []
