"""What the host's scheduling asks of the host itself, as one object: whether the container
engine answers, which processes compute on a GPU, how hot the GPUs are. The real ones read the
engine and NVML; a test hands in its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llenergymeasure.orchestrator.machine.engine import engine_answers
from llenergymeasure.orchestrator.machine.host_gpus import compute_processes, temperatures


@dataclass(frozen=True)
class HostProbes:
    engine_answers: Callable[[str], bool] = engine_answers
    # Host PIDs computing on each GPU index, or why NVML cannot say.
    compute_processes: Callable[[list[int]], dict[int, list[int]] | str] = compute_processes
    # °C per GPU index, or why NVML cannot say.
    temperatures: Callable[[list[int]], dict[int, float] | str] = temperatures

    def foreign_processes(self, gpus: tuple[int, ...]) -> list[int]:
        """Host PIDs computing on `gpus` before a run of this study starts there: none of
        this study's (the slot is free), so foreign. [] where NVML cannot say."""
        if not gpus:
            return []
        found = self.compute_processes(list(gpus))
        return [] if isinstance(found, str) else sorted({p for ps in found.values() for p in ps})
