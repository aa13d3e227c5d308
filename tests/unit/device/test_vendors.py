"""The entry points over the vendor table: the GPUs, or the reason they cannot be read, on the
host and in a container; the first vendor with GPUs answers; nothing vendor-specific is loaded
before it is asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.gpus import ScriptedPynvml
from llenergymeasure.device import VENDORS, GpuLibrary, host_gpus, visible_gpus
from llenergymeasure.device.nvidia import NVML, Nvml


def _missing() -> ScriptedPynvml:
    raise ImportError("No module named 'pynvml'")


def _nvml(**kw: object) -> Nvml:
    nv = ScriptedPynvml(**kw)  # type: ignore[arg-type]
    return Nvml(lambda: nv)


def test_the_table_has_one_row_per_vendor() -> None:
    assert dict(VENDORS) == {"nvidia": NVML}
    assert all(isinstance(library, GpuLibrary) for library in VENDORS.values())


def test_a_missing_library_is_a_reason_saying_where() -> None:
    vendors = {"nvidia": Nvml(_missing)}
    assert host_gpus(vendors=vendors) == "pynvml (nvidia-ml-py) is not installed on the host"
    assert visible_gpus(vendors) == "pynvml (nvidia-ml-py) is not installed in this image"


def test_a_library_that_cannot_start_is_a_reason() -> None:
    vendors = {"nvidia": _nvml(init_error=ScriptedPynvml.NVML_ERROR_DRIVER_NOT_LOADED)}
    expected = (
        "NVML could not be initialised: NVML_ERROR_DRIVER_NOT_LOADED: "
        "the NVIDIA driver is not loaded"
    )
    assert host_gpus(vendors=vendors) == expected
    assert visible_gpus(vendors) == expected


def test_the_hosts_gpus_by_its_index() -> None:
    vendors = {"nvidia": _nvml(count=2)}
    assert [gpu.index for gpu in host_gpus(vendors=vendors)] == [0, 1]  # type: ignore[union-attr]
    assert [gpu.index for gpu in host_gpus([1, 0], vendors)] == [1, 0]  # type: ignore[union-attr]
    assert host_gpus([0, 3], vendors) == "this host has no GPU [3] (it has 2, from 0)"


def test_a_container_sees_cudas_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    found = visible_gpus({"nvidia": _nvml(count=2)})
    assert [gpu.index for gpu in found] == [1, 0]  # type: ignore[union-attr]


def test_the_first_vendor_with_gpus_answers() -> None:
    missing, none, two = Nvml(_missing), _nvml(count=0), _nvml(count=2)
    assert len(host_gpus(vendors={"a": missing, "b": two})) == 2
    assert len(host_gpus(vendors={"a": none, "b": two})) == 2
    assert host_gpus(vendors={"a": missing, "b": none}) == []  # a library started: no GPUs
    broken = _nvml(init_error=ScriptedPynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    assert host_gpus(vendors={"a": missing, "b": broken}) == (
        "pynvml (nvidia-ml-py) is not installed on the host; NVML could not be initialised: "
        "NVML_ERROR_DRIVER_NOT_LOADED: the NVIDIA driver is not loaded"
    )


def test_importing_the_package_loads_no_vendor_library() -> None:
    check = (
        "import sys; import llenergymeasure.device, llenergymeasure.energy.gpus; "
        "print('pynvml' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
