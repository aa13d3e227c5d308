"""The metered GPUs over the device interface: which power reading is sampled and how the result
names it, a reading the GPU cannot give as None, and the reasons a result carries (NVML's
answers scripted: the real calls run where a GPU is lent)."""

from __future__ import annotations

from types import SimpleNamespace

from helpers.gpus import ScriptedNvmlError, ScriptedPynvml
from llenergymeasure.device.nvidia import Nvml
from llenergymeasure.energy.gpus import GpuSample, MeteredGpus

POWER = {"nvmlDeviceGetPowerUsage": 300_000, "nvmlDeviceGetTemperature": 61}


def _metered(gpu_count: int = 1, count: int = 1, **answers: object) -> MeteredGpus:
    nv = ScriptedPynvml(count=count, answers=answers)
    metered, reason = MeteredGpus.open(gpu_count, {"nvidia": Nvml(lambda: nv)})
    assert metered is not None, reason
    return metered


def test_the_instant_power_field_is_sampled_where_the_gpu_has_one() -> None:
    field = ScriptedPynvml.field(ScriptedPynvml.NVML_SUCCESS, 250_000)
    metered = _metered(nvmlDeviceGetFieldValues=field, **POWER)
    assert metered.power_method == "NVML field NVML_FI_DEV_POWER_INSTANT (instantaneous power)"
    assert metered.power_average_s == 0.0
    assert metered.sample() == [GpuSample(250.0, 61.0, None, None, None, None, None)]


def test_without_it_the_drivers_one_second_average_is_sampled() -> None:
    field = ScriptedPynvml.field(ScriptedPynvml.NVML_ERROR_NOT_SUPPORTED)
    metered = _metered(nvmlDeviceGetFieldValues=field, **POWER)
    assert metered.power_method == "nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer)"
    assert metered.power_average_s == 1.0
    assert metered.sample()[0].power_w == 300.0


def test_a_gpu_without_a_counter_says_why() -> None:
    metered = _metered(**POWER)
    assert metered.energy_counters_mj() is None
    assert metered.counter_reason == (
        "the NVML total-energy counter: NVML_ERROR_NOT_SUPPORTED: not supported by this GPU or "
        "driver"
    )
    assert metered.poll_counters(0.01) is None


def test_counters_and_processes_per_gpu() -> None:
    processes = [SimpleNamespace(pid=4242), SimpleNamespace(pid=17)]
    metered = _metered(
        2,
        2,
        nvmlDeviceGetTotalEnergyConsumption=9_000,
        nvmlDeviceGetComputeRunningProcesses=processes,
    )
    assert metered.indices == [0, 1]
    assert metered.energy_counters_mj() == [9_000.0, 9_000.0]
    assert metered.compute_process_counts() == [2, 2]
    denied = ScriptedNvmlError(ScriptedPynvml.NVML_ERROR_NO_PERMISSION)
    assert _metered(nvmlDeviceGetComputeRunningProcesses=denied).compute_process_counts() == [0]


def test_the_reasons_gpus_cannot_be_metered() -> None:
    assert MeteredGpus.open(0) == (None, "gpu_count is 0: the experiment ran on CPU")
    nv = ScriptedPynvml(count=2)
    assert MeteredGpus.open(3, {"nvidia": Nvml(lambda: nv)}) == (
        None,
        "gpu_count is 3 but NVML sees 2 GPU(s)",
    )
