"""The NVIDIA module without a GPU: NVML's error codes as typed errors with their meaning, the
library opened once per process, CUDA's order, and NVML's answers in the interface's units
(pynvml's stand-in scripts the answers; the real calls run where a GPU is lent)."""

from __future__ import annotations

import pytest

from helpers.gpus import ScriptedNvmlError, ScriptedPynvml
from llenergymeasure.device import (
    GpuError,
    GpuInvalidValue,
    GpuLibraryError,
    GpuLibraryMissing,
    GpuLost,
    GpuNoPermission,
    GpuNotSupported,
)
from llenergymeasure.device.nvidia import ERRORS, Nvml, cuda_order, gpu_error


def test_every_code_in_the_table_is_nvmls_and_raises_its_kind() -> None:
    pynvml = pytest.importorskip("pynvml")
    for name, (kind, meaning) in ERRORS.items():
        code = getattr(pynvml, f"NVML_ERROR_{name}")
        error = gpu_error(pynvml, pynvml.NVMLError(code))
        assert type(error) is kind
        assert (error.code, error.name, error.meaning) == (code, f"NVML_ERROR_{name}", meaning)
        assert str(error) == f"NVML_ERROR_{name}: {meaning}"


def test_the_reasons_a_result_carries_name_the_code() -> None:
    pynvml = pytest.importorskip("pynvml")
    cases = [
        ("NOT_SUPPORTED", GpuNotSupported, "not supported by this GPU"),
        ("NO_PERMISSION", GpuNoPermission, "not permitted"),
        ("INVALID_ARGUMENT", GpuInvalidValue, "a value this GPU does not accept"),
        ("GPU_IS_LOST", GpuLost, "the GPU fell off the bus"),
        ("DRIVER_NOT_LOADED", GpuLibraryError, "the NVIDIA driver is not loaded"),
        ("LIBRARY_NOT_FOUND", GpuLibraryError, "libnvidia-ml"),
    ]
    for name, kind, text in cases:
        error = gpu_error(pynvml, pynvml.NVMLError(getattr(pynvml, f"NVML_ERROR_{name}")))
        assert isinstance(error, kind) and str(error).startswith(f"NVML_ERROR_{name}: {text}")
    irq = pynvml.NVMLError(pynvml.NVML_ERROR_IRQ_ISSUE)  # not in the table: NVML's own words
    unknown = gpu_error(pynvml, irq)
    assert type(unknown) is GpuError and unknown.name is None
    assert str(unknown) == f"NVML error: {irq}"


def _missing() -> ScriptedPynvml:
    raise ImportError("No module named 'pynvml'")


def test_a_missing_library_is_its_own_kind() -> None:
    with pytest.raises(GpuLibraryMissing, match=r"^pynvml \(nvidia-ml-py\) is not installed$"):
        Nvml(_missing).gpus()


def test_nvml_is_initialised_once_and_a_failed_start_is_tried_again() -> None:
    nv = ScriptedPynvml(count=2, init_error=ScriptedPynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    library = Nvml(lambda: nv)
    with pytest.raises(GpuLibraryError, match="NVML_ERROR_DRIVER_NOT_LOADED: the NVIDIA driver"):
        library.gpus()
    nv.init_error = None
    assert [gpu.index for gpu in library.gpus()] == [0, 1]
    assert [gpu.index for gpu in library.visible_gpus()] == [0, 1]
    assert nv.inits == 2


@pytest.mark.parametrize(
    ("visible", "order"),
    [
        (None, [0, 1, 2]),
        ("", [0, 1, 2]),
        ("all", [0, 1, 2]),
        ("2,0", [2, 0]),
        (" 1 ", [1]),
        ("GPU-3f2a,GPU-77c1", [0, 1, 2]),  # UUIDs: the container sees only what it was granted
        ("0,7", [0, 1, 2]),  # an index NVML does not have: the granted GPUs, in NVML's order
    ],
)
def test_cuda_order(monkeypatch: pytest.MonkeyPatch, visible: str | None, order: list[int]) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert cuda_order(3) == order
    nv = ScriptedPynvml(count=3)
    assert [gpu.index for gpu in Nvml(lambda: nv).visible_gpus()] == order


def test_answers_come_in_the_interfaces_units() -> None:
    nv = ScriptedPynvml(
        count=2,
        answers={
            "nvmlDeviceGetUUID": b"GPU-5e1d",  # pynvml before 11.5 answers bytes
            "nvmlDeviceGetPowerManagementLimitConstraints": (100_000, 700_000),
            "nvmlDeviceGetPowerManagementDefaultLimit": 700_000,
            "nvmlDeviceGetPowerUsage": 312_500,
            "nvmlDeviceGetTotalEnergyConsumption": 12_345_678,
            "nvmlDeviceGetFieldValues": ScriptedPynvml.field(ScriptedPynvml.NVML_SUCCESS, 250_250),
            "nvmlDeviceGetSupportedMemoryClocks": [1593, 2619],
            "nvmlDeviceGetSupportedGraphicsClocks": [1980, 1965, 345],
            "nvmlDeviceGetMigMode": (0, 1),
        },
    )
    (gpu, other) = Nvml(lambda: nv).gpus()
    assert gpu.uuid() == "GPU-5e1d"
    assert gpu.power_limit_range_w() == (100.0, 700.0)
    assert gpu.default_power_limit_w() == 700.0
    assert gpu.power_average_w() == 312.5
    assert gpu.power_instant_w() == 250.25
    assert gpu.energy_mj() == 12_345_678.0
    assert gpu.graphics_clock_range_mhz() == (345, 1980)
    assert gpu.mig_mode() is False
    assert other.index == 1 and other.uuid() == "GPU-5e1d"


def test_refusals_are_typed_errors_with_nvmls_code() -> None:
    refused = ScriptedNvmlError(ScriptedPynvml.NVML_ERROR_NO_PERMISSION)
    nv = ScriptedPynvml(
        answers={
            "nvmlDeviceSetPowerManagementLimit": refused,
            "nvmlDeviceGetFieldValues": ScriptedPynvml.field(
                ScriptedPynvml.NVML_ERROR_NOT_SUPPORTED
            ),
        }
    )
    (gpu,) = Nvml(lambda: nv).gpus()
    with pytest.raises(GpuNoPermission) as refusal:
        gpu.set_power_limit_w(250.0)
    assert refusal.value.code == ScriptedPynvml.NVML_ERROR_NO_PERMISSION
    assert str(refusal.value) == (
        "NVML_ERROR_NO_PERMISSION: not permitted to this process (NVML permission)"
    )
    with pytest.raises(GpuNotSupported):
        gpu.power_instant_w()  # the field's own return code, not an exception from pynvml
    with pytest.raises(GpuNotSupported):
        gpu.lock_clocks_mhz(345, 1500)  # a call this GPU does not answer
