"""The in-memory GPU the host's tests run on: its settings behave as a GPU's (range, clamp,
permission, the hook before a set), and with a store its state outlives the process that set
it, a process killed with SIGKILL included."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.gpus import InMemoryGpu
from llenergymeasure.device import GPU, GpuInvalidValue, GpuNoPermission, GpuNotSupported

TESTS = Path(__file__).resolve().parents[2]


def test_settings_behave_as_a_gpus() -> None:
    (gpu,) = InMemoryGpu.of(1, step_w=5.0, default_power_limit_w=400.0)
    assert isinstance(gpu, GPU) and gpu.uuid() == "GPU-0"
    gpu.set_power_limit_w(252.0)
    assert gpu.power_limit_w() == 250.0  # the driver's step: a clamp
    assert gpu.default_power_limit_w() == 400.0
    with pytest.raises(GpuInvalidValue):
        gpu.set_power_limit_w(50.0)
    gpu.lock_clocks_mhz(210, 1500)
    with pytest.raises(GpuInvalidValue):
        gpu.lock_clocks_mhz(100, 1500)
    gpu.reset_clocks()
    assert gpu.state.locked_clocks_mhz is None
    assert gpu.calls == ["power 250", "lock 210-1500", "reset"]
    with pytest.raises(GpuNotSupported):
        gpu.energy_mj()


def test_permission_off_refuses_every_setting_before_the_hook() -> None:
    seen: list[str] = []
    (gpu,) = InMemoryGpu.of(1, permitted=False)
    gpu.before_set = seen.append
    for setting in (lambda: gpu.set_power_limit_w(200.0), gpu.reset_clocks):
        with pytest.raises(GpuNoPermission):
            setting()
    assert seen == [] and gpu.calls == [] and gpu.power_limit_w() == 350.0


def test_the_state_round_trips_through_its_store(tmp_path: Path) -> None:
    store = tmp_path / "gpus.json"
    mine = InMemoryGpu.of(2, store, compute_pids=[41], temperature_c=55.0)
    mine[1].set_power_limit_w(200.0)
    mine[0].update(compute_pids=[41, 97])
    theirs = InMemoryGpu.load(store)
    assert [gpu.uuid() for gpu in theirs] == ["GPU-0", "GPU-1"]
    assert theirs[1].power_limit_w() == 200.0 and theirs[0].power_limit_w() == 350.0
    assert theirs[0].compute_pids() == [41, 97] and theirs[1].temperature_c() == 55.0
    theirs[0].lock_clocks_mhz(300, 900)
    assert mine[0].state.locked_clocks_mhz == (300, 900)  # one GPU, whoever holds it


CHILD = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from helpers.gpus import InMemoryGpu

(gpu,) = InMemoryGpu.load(Path(sys.argv[1]))
gpu.set_power_limit_w(250.0)
gpu.before_set = lambda what: os.kill(os.getpid(), signal.SIGKILL)
gpu.lock_clocks_mhz(210, 1500)
"""


def test_what_a_killed_process_set_stays_set(tmp_path: Path) -> None:
    store = tmp_path / "gpus.json"
    InMemoryGpu.of(1, store)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(store), str(TESTS)], capture_output=True, text=True
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    (gpu,) = InMemoryGpu.load(store)
    assert gpu.power_limit_w() == 250.0  # landed before the kill
    assert gpu.state.locked_clocks_mhz is None  # killed before it landed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpus.json"]
