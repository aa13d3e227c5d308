"""On a real GPU: every call of the device interface answers in its units or raises a typed
`GpuError`, the host's and the container's entry points agree on the GPUs, and (as root) a power
limit set through the interface reads back and is put back."""

from __future__ import annotations

import os

import pytest

from llenergymeasure.device import (
    GPU,
    GpuError,
    GpuNoPermission,
    GpuNotSupported,
    host_gpus,
    visible_gpus,
)

FOUND = host_gpus()  # the GPUs, or why there are none
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(isinstance(FOUND, str) or not FOUND, reason=f"needs a GPU: {FOUND}"),
]

READINGS = (
    "power_instant_w",
    "power_average_w",
    "energy_mj",
    "temperature_c",
    "sm_clock_mhz",
    "utilisation_pct",
    "memory_used_mb",
    "enforced_power_limit_w",
    "power_limit_w",
    "default_power_limit_w",
)


def _first() -> GPU:
    found = host_gpus([0])
    assert not isinstance(found, str), found
    return found[0]


def test_every_reading_answers_or_says_why() -> None:
    gpu = _first()
    assert gpu.uuid().startswith(("GPU-", "MIG-")) and gpu.name()
    assert gpu.memory_total_mb() > 1000 and gpu.driver_version()
    for reading in READINGS:
        try:
            value = getattr(gpu, reading)()
        except GpuError as error:
            print(f"{reading}: {error}")
            continue
        print(f"{reading}: {value}")
        assert value >= 0
    low, high = gpu.power_limit_range_w()
    assert 0 < low <= gpu.default_power_limit_w() <= high
    slowest, fastest = gpu.graphics_clock_range_mhz()
    assert 0 < slowest < fastest
    assert isinstance(gpu.clock_event_reasons(), int)
    assert isinstance(gpu.persistence_mode(), bool) and isinstance(gpu.mig_mode(), bool)
    assert all(pid > 0 for pid in gpu.compute_pids())


def test_the_host_and_cuda_see_the_same_gpus() -> None:
    host, visible = host_gpus(), visible_gpus()
    assert not isinstance(host, str) and not isinstance(visible, str)
    assert {g.uuid() for g in visible} <= {g.uuid() for g in host}


@pytest.mark.skipif(os.geteuid() != 0, reason="setting a GPU needs root")
def test_a_power_limit_set_reads_back_and_is_put_back() -> None:
    gpu = _first()
    before = gpu.power_limit_w()
    low, high = gpu.power_limit_range_w()
    wanted = round(max(low, min(high, before * 0.8)))
    try:
        gpu.set_power_limit_w(wanted)
    except (GpuNoPermission, GpuNotSupported) as error:
        pytest.skip(f"this machine refuses it: {error}")
    try:
        assert abs(gpu.power_limit_w() - wanted) <= 1.0
    finally:
        gpu.set_power_limit_w(before)
    assert gpu.power_limit_w() == before
