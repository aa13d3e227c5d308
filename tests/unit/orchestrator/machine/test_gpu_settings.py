"""GPU settings as study keys: set on exactly the run's GPUs before it starts, read back, put
back on every exit path, through the one per-run host lifecycle and the host-wide ledger keyed
by GPU UUID. The NVML calls sit behind `GpuControl`; an in-memory device stands in for it (unit
tests only; the real calls run where a GPU is lent: tests/gpu)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_llem
from helpers.gpus import in_memory
from helpers.scheduler import HeldExecutor, InstantExecutor, make_scheduler, quiet_host
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger, LedgerUnreadable
from llenergymeasure.orchestrator.machine.gpu_settings import (
    PERMISSION_HINT,
    GpuControl,
    GpuKeeper,
    GpuSettingError,
    check_settings,
    restore_host,
)
from llenergymeasure.orchestrator.machine.lifecycle import HostRun, Machine
from llenergymeasure.orchestrator.machine.locks import HostLocks
from llenergymeasure.study.hashing import config_hash

LIMITS = {"gpu.power_limit_w": [200.0, 300.0]}


def _no_tables(scheduler) -> None:
    scheduler.collector.finish_study = lambda learned=False: []


def _ledger(tmp_path: Path) -> GpuLedger:
    """The host-wide ledger of `make_scheduler`'s machine (beside its locks)."""
    return GpuLedger(tmp_path / "locks")


def _killed_llem_left(ledger: GpuLedger, gpus: GpuControl, index: int, watts: float) -> None:
    """What an llem killed with -9 leaves: the GPU set, its ledger entry, nothing put back."""
    GpuKeeper(gpus, ledger).apply(
        "A_1", "0000_dead0000_c0", [index], GpuSettings(power_limit_w=watts)
    )


class Watching(InstantExecutor):
    """Notes each run's GPU 0 power limit as its container would have seen it."""

    seen: list[float]
    gpus: GpuControl

    def start(self, job) -> None:
        self.started.append(job)
        self.end(job, self._look)

    def _look(self):
        from llenergymeasure.orchestrator.machine.container import ContainerExit

        self.seen.append(self.gpus.power_limit_w(0))
        return ContainerExit("c", 0, False, None, 0.0, 0.0)


def _watching(gpus: GpuControl) -> type[Watching]:
    return type("W", (Watching,), {"seen": [], "gpus": gpus})


def test_a_power_limit_sweep_sets_each_run_and_puts_the_gpu_back(tmp_path: Path) -> None:
    gpus = in_memory(1)
    executor = _watching(gpus)
    scheduler, _ = make_scheduler(
        tmp_path,
        {"gpu_ids": [0], "gap_between_experiments_s": 0},
        sweep=LIMITS,
        executor=executor,
        gpu_control=gpus,
    )
    _no_tables(scheduler)
    scheduler.run()
    assert executor.seen == [200.0, 300.0]
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
    assert _ledger(tmp_path).entries() == []


def test_ctrl_c_puts_the_gpu_back(tmp_path: Path) -> None:
    gpus = in_memory(1)
    scheduler, executor = make_scheduler(
        tmp_path, {"gpu_ids": [0]}, sweep=LIMITS, executor=HeldExecutor, gpu_control=gpus
    )
    original = executor.start

    def start_then_stop(job) -> None:
        original(job)
        scheduler.stop.request()

    executor.start = start_then_stop  # type: ignore[method-assign]
    assert scheduler.run() == 130
    assert gpus.power_limit_w(0) == 350.0
    assert _ledger(tmp_path).entries() == []


def test_an_unexpected_error_stops_the_run_and_puts_the_gpu_back(tmp_path: Path) -> None:
    gpus = in_memory(1)
    scheduler, executor = make_scheduler(
        tmp_path, {"gpu_ids": [0]}, sweep=LIMITS, executor=HeldExecutor, gpu_control=gpus
    )
    original = executor.start

    def start_then_fail(job) -> None:
        original(job)
        raise RuntimeError("a bug")

    executor.start = start_then_fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        scheduler.run()
    assert executor.cancelled  # the run in flight was stopped, and its lifecycle ended
    assert gpus.power_limit_w(0) == 350.0 and gpus.gpu(0).state.locked_clocks_mhz is None
    assert _ledger(tmp_path).entries() == []


def test_after_kill_9_the_next_run_on_the_gpu_puts_it_back_before_reading_its_before(
    tmp_path: Path,
) -> None:
    """Study A set 150 W and was killed -9; study B's run on that GPU records the GPU's own
    350 W as its "before" (not A's 150 W), sets 250 W, and leaves the GPU at 350 W."""
    gpus = in_memory(1)
    _killed_llem_left(_ledger(tmp_path), gpus, 0, 150.0)
    executor = _watching(gpus)
    scheduler, _ = make_scheduler(
        tmp_path,
        {"gpu_ids": [0]},
        sweep={"gpu.power_limit_w": [250.0]},
        executor=executor,
        gpu_control=gpus,
    )
    _no_tables(scheduler)
    scheduler.run()
    assert executor.seen == [250.0]
    (record,) = next(iter(scheduler.manifest.record.runs.values())).gpu_settings
    assert (record.power_limit_w_before, record.restored) == (350.0, True)
    assert gpus.power_limit_w(0) == 350.0 and _ledger(tmp_path).entries() == []


def test_a_run_without_settings_runs_on_the_gpu_as_it_was_before_a_killed_llem(
    tmp_path: Path,
) -> None:
    gpus = in_memory(1)
    _killed_llem_left(_ledger(tmp_path), gpus, 0, 150.0)
    executor = _watching(gpus)
    scheduler, _ = make_scheduler(
        tmp_path, {"gpu_ids": [0]}, n=1, executor=executor, gpu_control=gpus
    )
    _no_tables(scheduler)
    scheduler.run()
    assert executor.seen == [350.0]
    assert _ledger(tmp_path).entries() == []


def test_llem_status_reads_and_puts_nothing_back(tmp_path: Path) -> None:
    gpus = in_memory(1)
    scheduler, _ = make_scheduler(tmp_path, {})
    ledger = _ledger(tmp_path)
    GpuKeeper(gpus, ledger).apply(
        scheduler.manifest.record.study_id, "0000_dead0000_c0", [0], GpuSettings(power_limit_w=150)
    )
    code, _, err = run_llem(
        "status", str(scheduler.study_dir), LLEM_LOCK_DIR=str(tmp_path / "locks")
    )
    assert code == 0
    assert "still changed on this host: GPU 0 (GPU-0): power limit 150 W (was 350 W)" in err
    assert "llem gpus restore" in err
    assert gpus.power_limit_w(0) == 150.0 and len(ledger.entries()) == 1


def test_the_ledger_is_written_before_the_gpu_is_touched(tmp_path: Path) -> None:
    seen: list[int] = []
    gpus = in_memory(1)
    ledger = GpuLedger(tmp_path)
    gpus.gpu(0).before_set = lambda what: seen.append(len(ledger.entries()))
    GpuKeeper(gpus, ledger).apply("s", "r", [0], GpuSettings(power_limit_w=200.0))
    assert seen == [1]
    (entry,) = ledger.entries()
    assert (entry.uuid, entry.power_limit_w_before, entry.by.run_id) == ("GPU-0", 350.0, "r")
    on_disk = json.loads((tmp_path / "gpu-settings" / "GPU-0.json").read_text())
    assert on_disk["power_limit_w_before"] == 350.0
    assert (tmp_path / "gpu-settings" / "GPU-0.json").stat().st_mode & 0o777 == 0o600


def test_a_failure_half_way_puts_back_what_was_set(tmp_path: Path) -> None:
    gpus = in_memory(2)
    gpus.gpu(1).update(power_range_w=(250.0, 400.0))  # 200 W refused on GPU 1
    keeper = GpuKeeper(gpus, GpuLedger(tmp_path))
    with pytest.raises(GpuSettingError, match="200 W is outside 250-400 W"):
        keeper.apply("s", "r", [0, 1], GpuSettings(power_limit_w=200.0))
    assert gpus.power_limit_w(0) == 350.0
    assert GpuLedger(tmp_path).entries() == []


def test_a_clamped_limit_is_recorded_as_clamped(tmp_path: Path) -> None:
    gpus = in_memory(1, step_w=5.0)
    keeper = GpuKeeper(gpus, GpuLedger(tmp_path))
    (record,) = keeper.apply("s", "r", [0], GpuSettings(power_limit_w=303))
    assert (record.power_limit_w_effective, record.clamped) == (305.0, True)


def test_a_gpu_that_changed_identity_is_not_written_to(tmp_path: Path) -> None:
    gpus = in_memory(1)
    keeper = GpuKeeper(gpus, GpuLedger(tmp_path))
    records = keeper.apply("s", "r", [0], GpuSettings(power_limit_w=200.0))
    gpus.gpu(0).update(uuid="GPU-other")
    with pytest.raises(GpuSettingError, match="is now GPU-other"):
        keeper.restore(GpuLedger(tmp_path).get(records[0].uuid))
    assert len(GpuLedger(tmp_path).entries()) == 1  # kept for a later try


def _machine(tmp_path: Path, gpus: GpuControl, processes=None) -> Machine:
    probes = quiet_host(processes if processes is not None else "no NVML here")
    return Machine(probes, control=gpus, ledger=GpuLedger(tmp_path))


def _run(gpus_of_run: tuple[int, ...], **kw) -> HostRun:
    return HostRun(study_id="B_1", run_id="0001_feed0000_c0", gpus=gpus_of_run, **kw)


def _container_seeing(gpus: GpuControl, seen: list[float]):
    from llenergymeasure.orchestrator.machine.container import ContainerExit

    def container() -> ContainerExit:
        seen.append(gpus.power_limit_w(0))
        return ContainerExit("c", 0, False, None, 0.0, 0.0)

    return container


def test_settings_are_never_changed_under_another_process(tmp_path: Path) -> None:
    """A foreign process on the GPU: the run is refused (no container), the GPU untouched,
    whatever the foreign-process policy; a leftover is still put back."""
    gpus = in_memory(1)
    _killed_llem_left(GpuLedger(tmp_path), gpus, 0, 150.0)
    machine = _machine(tmp_path, gpus, processes={0: [4242]})
    seen: list[float] = []
    settings = GpuSettings(power_limit_w=200.0)
    exit_, host = machine.run(_run((0,), settings=settings), _container_seeing(gpus, seen))
    assert seen == [] and exit_.container_id is None
    assert host.refused is not None and host.refused.error_type == "GpuBusy"
    assert "4242" in host.refused.message and host.foreign_gpu_processes == [4242]
    assert gpus.power_limit_w(0) == 350.0 and GpuLedger(tmp_path).entries() == []
    assert "put back what an earlier llem left" in host.notes[0]


def test_foreign_processes_warn_or_refuse_by_policy(tmp_path: Path) -> None:
    gpus = in_memory(1)
    machine = _machine(tmp_path, gpus, processes={0: [77]})
    seen: list[float] = []
    _, host = machine.run(_run((0,), settings=GpuSettings()), _container_seeing(gpus, seen))
    assert seen == [350.0] and host.foreign_gpu_processes == [77] and host.refused is None
    refused = _run((0,), settings=GpuSettings(), foreign_gpu_processes="error")
    _, host = machine.run(refused, _container_seeing(gpus, seen))
    assert host.refused is not None and host.refused.error_type == "ForeignGpuProcesses"
    assert seen == [350.0]


def test_a_gpu_off_its_default_with_no_ledger_entry_is_warned_or_refused(tmp_path: Path) -> None:
    gpus = in_memory(1)
    gpus.gpu(0).update(power_limit_w=300.0)  # an administrator set it; llem did not
    machine = _machine(tmp_path, gpus)
    seen: list[float] = []
    _, host = machine.run(_run((0,), settings=GpuSettings()), _container_seeing(gpus, seen))
    assert seen == [300.0] and host.refused is None
    assert host.gpu_off_default == [
        "GPU 0's power limit is 300 W, not its default 350 W, and no llem changed it"
    ]
    strict = _run((0,), settings=GpuSettings(), gpu_off_default="error")
    _, host = machine.run(strict, _container_seeing(gpus, seen))
    assert host.refused is not None and host.refused.error_type == "GpuOffDefault"
    assert len(seen) == 1 and gpus.power_limit_w(0) == 300.0  # left as the administrator set it


def test_off_default_becomes_a_result_warning_in_the_manifest(tmp_path: Path) -> None:
    gpus = in_memory(1)
    gpus.gpu(0).update(power_limit_w=300.0)
    scheduler, _ = make_scheduler(tmp_path, {"gpu_ids": [0]}, n=1, gpu_control=gpus)
    _no_tables(scheduler)
    scheduler.run()
    (record,) = scheduler.manifest.record.runs.values()
    assert record.gpu_off_default and "not its default 350 W" in record.gpu_off_default[0]


def test_a_corrupt_ledger_is_one_message_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "gpu-settings"
    folder.mkdir(mode=0o700)
    bad = folder / "GPU-0.json"
    bad.write_text("{not json")
    bad.chmod(0o600)
    gpus = in_memory(1)
    machine = _machine(tmp_path, gpus)
    with pytest.raises(LedgerUnreadable, match=str(bad)):
        GpuLedger(tmp_path).entries()
    _, host = machine.run(_run((0,), settings=GpuSettings()), _container_seeing(gpus, []))
    assert host.refused is not None and str(bad) in host.refused.message
    code, _, err = run_llem("gpus", "show", LLEM_LOCK_DIR=str(tmp_path))
    assert code == 2 and str(bad) in err and "Traceback" not in err


def test_a_ledger_entry_of_another_user_or_writable_by_others_is_refused(tmp_path: Path) -> None:
    gpus = in_memory(1)
    ledger = GpuLedger(tmp_path)
    GpuKeeper(gpus, ledger).apply("s", "r", [0], GpuSettings(power_limit_w=200.0))
    (tmp_path / "gpu-settings" / "GPU-0.json").chmod(0o666)
    with pytest.raises(LedgerUnreadable, match="0600"):
        ledger.get("GPU-0")


def test_llem_gpus_restore_puts_back_and_leaves_a_gpu_another_llem_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.cli import gpus as gpus_cli

    gpus = in_memory(2)
    ledger = GpuLedger(tmp_path)
    keeper = GpuKeeper(gpus, ledger)
    keeper.apply("A_1", "0000_dead0000_c0", [0], GpuSettings(power_limit_w=150.0))
    keeper.apply("C_1", "0000_live0000_c0", [1], GpuSettings(power_limit_w=250.0))
    monkeypatch.setattr(gpus_cli, "host_control", lambda: gpus)
    with HostLocks([1], "C_1", tmp_path):  # study C runs on GPU 1 now
        code, out, _ = run_llem("gpus", "restore", LLEM_LOCK_DIR=str(tmp_path))
    assert code == 1
    assert "put back: GPU 0 (GPU-0): power limit 350 W" in out
    assert "left as it is: GPU-1: GPU 1 is in use by another llem run: study C_1" in out
    assert gpus.power_limit_w(0) == 350.0 and gpus.power_limit_w(1) == 250.0
    assert [e.uuid for e in ledger.entries()] == ["GPU-1"]
    done = restore_host(ledger, gpus)  # C ended (or was killed): now it is put back
    assert [e.uuid for e in done.restored] == ["GPU-1"] and gpus.power_limit_w(1) == 350.0


def test_plan_time_checks_range_and_permission() -> None:
    gpus = in_memory(1)
    with pytest.raises(GpuSettingError, match="outside GPU 0's range 100-400 W"):
        check_settings(gpus, [0], [GpuSettings(power_limit_w=450.0)])
    with pytest.raises(GpuSettingError, match="outside GPU 0's supported clocks 210-1980"):
        check_settings(gpus, [0], [GpuSettings(locked_clocks_mhz=(300, 2100))])
    gpus.gpu(0).update(permitted=False)
    with pytest.raises(GpuSettingError, match="no permission") as error:
        check_settings(gpus, [0], [GpuSettings(power_limit_w=200.0)])
    assert error.value.hint == PERMISSION_HINT
    check_settings(in_memory(1), [0], [GpuSettings(power_limit_w=200.0)])  # fine


def test_gpu_keys_in_the_config() -> None:
    assert GpuSettings(locked_clocks_mhz=1410).locked_clocks_mhz == (1410, 1410)
    with pytest.raises(ValueError, match="0 < min <= max"):
        GpuSettings(locked_clocks_mhz=(1500, 1400))
    with pytest.raises(ValueError, match="gpu_count is 0"):
        ExperimentConfig(model="m", gpu_count=0, gpu={"power_limit_w": 200})
    a = ExperimentConfig(model="m", gpu={"power_limit_w": 200})
    b = ExperimentConfig(model="m", gpu={"power_limit_w": 300})
    assert config_hash(a) != config_hash(b)


def _node_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus: GpuControl, sweep: dict):
    """A Slurm node's run of a one-run study, its container replaced by a look at GPU 0, its
    node-local lock folder and ledger in tmp_path/node-locks."""
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
    monkeypatch.setenv("LLEM_LOCK_DIR", str(tmp_path / "node-locks"))
    monkeypatch.setattr(node_module, "gpu_uuids", lambda indices: {0: "GPU-0"})
    monkeypatch.setattr(node_module.NodeRun, "_wait_gap_and_cooldown", lambda *a: None)
    seen: list[float] = []

    def container(self, *args):
        seen.append(gpus.power_limit_w(0))
        return ContainerExit("c", 0, False, None, 0.0, 1.0)

    monkeypatch.setattr(node_module.NodeRun, "_run", container)
    node_run = node_module.NodeRun(study_dir, run.run_id)
    node_run.machine = Machine(quiet_host(), control=gpus)
    node_run.workdir.mkdir(parents=True)  # the submitter makes it
    return node_run, study_dir, seen


def test_a_slurm_node_sets_its_gpus_and_puts_them_back(tmp_path, monkeypatch) -> None:
    from llenergymeasure.orchestrator.executors.slurm.batches import slurm_dir
    from llenergymeasure.orchestrator.executors.slurm.node_job import jobs_dir, read_node_exit

    gpus = in_memory(1)
    node_run, study_dir, seen = _node_run(
        tmp_path, monkeypatch, gpus, {"gpu.power_limit_w": [250.0]}
    )
    node_run.execute()
    assert seen == [250.0] and gpus.power_limit_w(0) == 350.0
    exit_ = read_node_exit(jobs_dir(slurm_dir(study_dir)), node_run.job.run.run_id)
    assert exit_.host is not None
    (record,) = exit_.host.gpu_settings
    assert (record.power_limit_w_before, record.power_limit_w_effective, record.restored) == (
        350.0,
        250.0,
        True,
    )


def test_a_slurm_node_puts_back_only_its_own_allocation(tmp_path, monkeypatch) -> None:
    """A killed run left GPU 0 at 150 W; a sibling task of the same study runs on GPU 1 of the
    shared node at 250 W right now. This task (GPU 0) puts GPU 0 back and never touches GPU 1."""
    gpus = in_memory(2)
    node_run, _, seen = _node_run(tmp_path, monkeypatch, gpus, {"n_prompts": [3]})
    ledger = GpuLedger(tmp_path / "node-locks")
    keeper = GpuKeeper(gpus, ledger)
    keeper.apply("t_1", "0000_dead0000_c0", [0], GpuSettings(power_limit_w=150.0))  # killed
    keeper.apply("t_1", "0002_live0000_c0", [1], GpuSettings(power_limit_w=250.0))  # running
    with HostLocks([1], "t_1", tmp_path / "node-locks"):
        node_run.execute()  # a run without gpu settings, on GPU 0
    assert seen == [350.0]  # it ran on GPU 0 as it was before the killed run
    assert gpus.power_limit_w(1) == 250.0  # the sibling's live setting is its own
    assert [e.uuid for e in ledger.entries()] == ["GPU-1"]


def test_a_slurm_node_refuses_a_gpu_another_task_holds(tmp_path, monkeypatch) -> None:
    from llenergymeasure.orchestrator.executors.slurm.batches import slurm_dir
    from llenergymeasure.orchestrator.executors.slurm.node_job import jobs_dir, read_node_exit

    gpus = in_memory(1)
    node_run, study_dir, seen = _node_run(tmp_path, monkeypatch, gpus, {"n_prompts": [3]})
    with HostLocks([0], "other", tmp_path / "node-locks"):
        node_run.execute()
    exit_ = read_node_exit(jobs_dir(slurm_dir(study_dir)), node_run.job.run.run_id)
    assert seen == [] and exit_.host is not None and exit_.host.refused is not None
    assert exit_.host.refused.error_type == "GpuInUse"


def test_an_unreadable_ledger_stops_the_study_and_its_run_runs_again(tmp_path: Path) -> None:
    """A corrupt ledger is the machine's problem, not the run's: the run is `interrupted` (a
    search must not learn it as infeasible), llem stops with one message naming the file, and
    no other run starts."""
    from llenergymeasure.errors import UserError

    folder = tmp_path / "locks" / "gpu-settings"
    folder.mkdir(parents=True, mode=0o700)
    bad = folder / "GPU-0.json"
    bad.write_text("{not json")
    bad.chmod(0o600)
    scheduler, executor = make_scheduler(tmp_path, {"gpu_ids": [0]}, gpu_control=in_memory(1))
    with pytest.raises(UserError, match="llem stopped before run") as stopped:
        scheduler.run()
    assert str(bad) in stopped.value.message and "--resume" in (stopped.value.hint or "")
    runs = sorted(scheduler.manifest.record.runs.values(), key=lambda r: r.run_index)
    assert [(r.status, r.error_type) for r in runs] == [
        ("interrupted", "GpuLedger"),
        ("pending", None),
    ]
    assert executor.containers == []
