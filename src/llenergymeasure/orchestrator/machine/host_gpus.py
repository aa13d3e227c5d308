"""The host's GPUs as the host sees them (NVML, optional on the host): physical identity,
processes and temperature, for slots, the foreign-process check and cool-down.

NVML indexes physical GPUs and ignores CUDA_VISIBLE_DEVICES, so `execution.gpu_ids` are NVML's
(= nvidia-smi's) indices and each is resolved to its UUID once; containers are granted GPUs by
UUID, so a run meters exactly the GPUs its slot holds. Where NVML cannot be read every query
returns the reason instead of an answer, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


@contextmanager
def _nvml() -> Iterator[Any]:
    import pynvml

    pynvml.nvmlInit()
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def _query(read: Callable[[Any], T]) -> T | str:
    """`read(pynvml)` with NVML open, or the reason it could not be read."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed on the host"
    try:
        with _nvml() as nvml:
            return read(nvml)
    except pynvml.NVMLError as error:
        return f"NVML unavailable on the host: {error}"


def gpu_uuids(indices: list[int]) -> dict[int, str] | str:
    """Physical GPU index -> UUID, or why they cannot be read."""

    def read(nvml: Any) -> dict[int, str]:
        return {
            index: _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(index)))
            for index in indices
        }

    return _query(read)


def compute_processes(indices: list[int]) -> dict[int, list[int]] | str:
    """Host PIDs of the compute processes on each GPU, or why they cannot be read."""

    def read(nvml: Any) -> dict[int, list[int]]:
        found = {}
        for index in indices:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            found[index] = sorted(p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        return found

    return _query(read)


def temperatures(indices: list[int]) -> dict[int, float] | str:
    """°C per GPU index, or why they cannot be read."""

    def read(nvml: Any) -> dict[int, float]:
        return {
            index: float(
                nvml.nvmlDeviceGetTemperature(
                    nvml.nvmlDeviceGetHandleByIndex(index), nvml.NVML_TEMPERATURE_GPU
                )
            )
            for index in indices
        }

    return _query(read)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
