"""The GPUs of this machine behind one interface (`GPU`), for the host and the container alike.

- `host_gpus(indices)`: the host's GPUs by the host's index (`nvidia-smi`'s): its settings,
  identity, processes and temperature.
- `visible_gpus()`: the GPUs the compute runtime of this process sees, in the runtime's order
  (a container's CUDA devices 0, 1, ...): what an experiment meters.

Each answers the GPUs, or the reason they cannot be read (library not installed, driver not
loaded), never raises for it. `VENDORS` is the table of vendors' libraries, tried in order: a
vendor is one module implementing `GpuLibrary` and `GPU`, plus one row. Only the vendor's
module imports the vendor's library, and only when first asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from llenergymeasure.device import nvidia
from llenergymeasure.device.gpu import (
    GPU,
    THROTTLE_BITS,
    GpuError,
    GpuInvalidValue,
    GpuLibrary,
    GpuLibraryError,
    GpuLibraryMissing,
    GpuLost,
    GpuNoPermission,
    GpuNotFound,
    GpuNotSupported,
    throttle_names,
)

VENDORS: Mapping[str, GpuLibrary] = {"nvidia": nvidia.NVML}


def host_gpus(
    indices: Sequence[int] | None = None, vendors: Mapping[str, GpuLibrary] = VENDORS
) -> list[GPU] | str:
    """The host's GPUs (`indices`: those, in that order; every one when None), or why not."""
    found = _first(vendors, "on the host", lambda library: library.gpus())
    if isinstance(found, str) or indices is None:
        return found
    by_index = {gpu.index: gpu for gpu in found}
    absent = [index for index in indices if index not in by_index]
    if absent:
        return f"this host has no GPU {absent} (it has {len(found)}, from 0)"
    return [by_index[index] for index in indices]


def visible_gpus(vendors: Mapping[str, GpuLibrary] = VENDORS) -> list[GPU] | str:
    """The GPUs this process's compute runtime sees, in its order, or why not."""
    return _first(vendors, "in this image", lambda library: library.visible_gpus())


def _first(
    vendors: Mapping[str, GpuLibrary], where: str, read: Callable[[GpuLibrary], list[GPU]]
) -> list[GPU] | str:
    """The GPUs of the first vendor with any; none where the libraries that start see none;
    every vendor's reason where none starts (`where`: where a library is missing)."""
    reasons: list[str] = []
    started = False
    for library in vendors.values():
        try:
            found = read(library)
        except GpuLibraryMissing as error:
            reasons.append(f"{error} {where}")
            continue
        except GpuError as error:
            reasons.append(f"{library.name} could not be initialised: {error}")
            continue
        if found:
            return found
        started = True
    return [] if started else "; ".join(reasons)


__all__ = [
    "GPU",
    "THROTTLE_BITS",
    "VENDORS",
    "GpuError",
    "GpuInvalidValue",
    "GpuLibrary",
    "GpuLibraryError",
    "GpuLibraryMissing",
    "GpuLost",
    "GpuNoPermission",
    "GpuNotFound",
    "GpuNotSupported",
    "host_gpus",
    "throttle_names",
    "visible_gpus",
]
