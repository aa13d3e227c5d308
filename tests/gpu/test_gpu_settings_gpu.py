"""On a real GPU (root): a power limit set through NVML, read back, and put back; clocks locked
and unlocked; the counter's update period measured by the same poll the experiment uses. Skipped
without a GPU or NVML, or where the platform refuses settings even to root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

pynvml = pytest.importorskip("pynvml")


def _gpu_count() -> int:
    try:
        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError:
        return 0


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_gpu_count() == 0, reason="needs an NVIDIA GPU")]

from llenergymeasure.contract.gpu_settings import GpuSettings  # noqa: E402
from llenergymeasure.orchestrator.machine.gpu_settings import (  # noqa: E402
    GpuKeeper,
    GpuSettingError,
    NvmlControl,
    check_settings,
)
from llenergymeasure.study.gpu_ledger import Ledger  # noqa: E402

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setting a GPU needs root")


REFUSALS = ("no permission", "Not Supported")


def _skip_if_refused(error: GpuSettingError) -> NoReturn:
    """A platform that refuses GPU settings even to root (a virtualised GPU) skips; any other
    NVML error fails."""
    if not any(refusal in str(error) for refusal in REFUSALS):
        raise error
    pytest.skip(f"this machine refuses it: {error}")


def _settable(control: NvmlControl, settings: GpuSettings) -> None:
    """The plan-time probe first: where it is refused, nothing else is tried."""
    try:
        check_settings(control, [0], [settings])
    except GpuSettingError as error:
        _skip_if_refused(error)


@needs_root
def test_a_power_limit_is_set_read_back_and_put_back(tmp_path: Path) -> None:
    control = NvmlControl()
    _settable(control, GpuSettings(power_limit_w=control.power_limit_w(0)))
    before = control.power_limit_w(0)
    low, high = control.power_limit_range_w(0)
    wanted = round(max(low, min(high, before * 0.8)))
    keeper = GpuKeeper(control, Ledger(tmp_path))
    (record,) = keeper.apply("gpu-test", [0], GpuSettings(power_limit_w=wanted))
    assert abs(control.power_limit_w(0) - wanted) <= 1.0
    assert record.power_limit_w_before == before and not record.clamped
    keeper.restore("gpu-test")
    assert control.power_limit_w(0) == before
    assert Ledger(tmp_path).outstanding() == []


def test_the_counter_update_period_is_measured() -> None:
    from llenergymeasure.energy.nvml import Nvml

    nvml, reason = Nvml.open(1)
    assert nvml is not None, reason
    periods = nvml.poll_counters(2.0)
    assert periods, "the counter did not change three times in 2 s"
    period = periods[nvml.static_info()[0].index]
    print(f"NVML energy counter update period: {period * 1000:.1f} ms")
    assert 0.001 <= period <= 1.0


@needs_root
def test_clocks_are_locked_and_unlocked(tmp_path: Path) -> None:
    control = NvmlControl()
    low, high = control.clock_range_mhz(0)
    lock = GpuSettings(locked_clocks_mhz=(low, (low + high) // 2))
    keeper = GpuKeeper(control, Ledger(tmp_path))
    try:
        (record,) = keeper.apply("gpu-test", [0], lock)
    except GpuSettingError as error:
        _skip_if_refused(error)
    assert record.locked_clocks_mhz == lock.locked_clocks_mhz
    assert Ledger(tmp_path).outstanding() == [record]
    keeper.restore("gpu-test")
    assert Ledger(tmp_path).outstanding() == []
