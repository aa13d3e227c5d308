"""On a real GPU (root): a power limit set through NVML, read back, and put back; clocks locked
and unlocked; the counter's update period measured by the same poll the experiment uses. Skipped
without a GPU or NVML, or where the platform refuses settings even to root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from llenergymeasure.device import host_gpus

FOUND = host_gpus()  # the GPUs, or why there are none
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(isinstance(FOUND, str) or not FOUND, reason=f"needs a GPU: {FOUND}"),
]

from llenergymeasure.contract.gpu_settings import GpuSettings  # noqa: E402
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger  # noqa: E402
from llenergymeasure.orchestrator.machine.gpu_settings import (  # noqa: E402
    GpuControl,
    GpuKeeper,
    GpuSettingError,
    check_settings,
    host_control,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setting a GPU needs root")


REFUSALS = ("no permission", "NOT_SUPPORTED")


def _skip_if_refused(error: GpuSettingError) -> NoReturn:
    """A platform that refuses GPU settings even to root (a virtualised GPU) skips; any other
    NVML error fails."""
    if not any(refusal in str(error) for refusal in REFUSALS):
        raise error
    pytest.skip(f"this machine refuses it: {error}")


def _settable(control: GpuControl, settings: GpuSettings) -> None:
    """The plan-time probe first: where it is refused, nothing else is tried."""
    try:
        check_settings(control, [0], [settings])
    except GpuSettingError as error:
        _skip_if_refused(error)


@needs_root
def test_a_power_limit_is_set_read_back_and_put_back(tmp_path: Path) -> None:
    control = host_control()
    _settable(control, GpuSettings(power_limit_w=control.power_limit_w(0)))
    before = control.power_limit_w(0)
    low, high = control.power_limit_range_w(0)
    wanted = round(max(low, min(high, before * 0.8)))
    ledger = GpuLedger(tmp_path)
    keeper = GpuKeeper(control, ledger)
    (record,) = keeper.apply("gpu-test", "r", [0], GpuSettings(power_limit_w=wanted))
    assert abs(control.power_limit_w(0) - wanted) <= 1.0
    assert record.power_limit_w_before == before and not record.clamped
    assert [e.uuid for e in ledger.entries()] == [record.uuid]
    (back,) = keeper.put_back([record])
    assert back.restored and control.power_limit_w(0) == before
    assert ledger.entries() == []
    default = control.default_power_limit_w(0)
    print(f"GPU 0 power limit {before:g} W, the driver's default {default:g} W")


def test_the_counter_update_period_is_measured() -> None:
    from llenergymeasure.energy.gpus import MeteredGpus

    metered, reason = MeteredGpus.open(1)
    assert metered is not None, reason
    periods = metered.poll_counters(2.0)
    assert periods, "the counter did not change three times in 2 s"
    period = periods[metered.indices[0]]
    print(f"NVML energy counter update period: {period * 1000:.1f} ms")
    assert 0.001 <= period <= 1.0


@needs_root
def test_clocks_are_locked_and_unlocked(tmp_path: Path) -> None:
    control = host_control()
    low, high = control.clock_range_mhz(0)
    lock = GpuSettings(locked_clocks_mhz=(low, (low + high) // 2))
    ledger = GpuLedger(tmp_path)
    keeper = GpuKeeper(control, ledger)
    try:
        (record,) = keeper.apply("gpu-test", "r", [0], lock)
    except GpuSettingError as error:
        _skip_if_refused(error)
    assert record.locked_clocks_mhz == lock.locked_clocks_mhz
    (entry,) = ledger.entries()
    assert entry.clocks_locked == lock.locked_clocks_mhz
    keeper.put_back([record])
    assert ledger.entries() == []
