"""The host's GPUs as the host sees them (`llenergymeasure.device`, optional on the host):
physical identity, processes and temperature, for slots, the foreign-process check and
cool-down.

The host's index is the vendor library's (NVML's = nvidia-smi's), which ignores
CUDA_VISIBLE_DEVICES, so `execution.gpu_ids` are those indices and each is resolved to its UUID
once; containers are granted GPUs by UUID, so a run meters exactly the GPUs its slot holds.
Where the GPUs cannot be read every query returns the reason instead of an answer, never a
guess.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from llenergymeasure.device import GPU, GpuError, host_gpus

T = TypeVar("T")


def _per_gpu(indices: list[int], read: Callable[[GPU], T]) -> dict[int, T] | str:
    """`read(gpu)` for each of the host's GPUs `indices`, or why they cannot be read."""
    found = host_gpus(indices)
    if isinstance(found, str):
        return found
    try:
        return {gpu.index: read(gpu) for gpu in found}
    except GpuError as error:
        return f"the host's GPUs could not be read: {error}"


def gpu_uuids(indices: list[int]) -> dict[int, str] | str:
    """Physical GPU index -> UUID, or why they cannot be read."""
    return _per_gpu(indices, lambda gpu: gpu.uuid())


def identities(indices: list[int]) -> dict[int, tuple[str, str]] | str:
    """Physical GPU index -> (name, driver version), or why they cannot be read."""
    return _per_gpu(indices, lambda gpu: (gpu.name(), gpu.driver_version()))


def compute_processes(indices: list[int]) -> dict[int, list[int]] | str:
    """Host PIDs of the compute processes on each GPU, or why they cannot be read."""
    return _per_gpu(indices, lambda gpu: gpu.compute_pids())


def temperatures(indices: list[int]) -> dict[int, float] | str:
    """°C per GPU index, or why they cannot be read."""
    return _per_gpu(indices, lambda gpu: gpu.temperature_c())
