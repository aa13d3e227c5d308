"""Cool-down between runs: wait until the run's GPUs are at or below a temperature (host NVML).

NVML is optional on the host; where it cannot be read the wait is skipped with a note, never
guessed.
"""

from __future__ import annotations

from collections.abc import Callable

from llenergymeasure.orchestrator.stop import StopState

POLL_S = 2.0
MAX_WAIT_S = 1800.0


def read_temperatures(gpu_indices: list[int]) -> dict[int, float] | str:
    """°C per GPU index, or the reason they cannot be read."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed on the host"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return f"NVML unavailable: {error}"
    try:
        return {
            index: float(
                pynvml.nvmlDeviceGetTemperature(
                    pynvml.nvmlDeviceGetHandleByIndex(index), pynvml.NVML_TEMPERATURE_GPU
                )
            )
            for index in gpu_indices
        }
    except pynvml.NVMLError as error:
        return f"NVML read failed: {error}"
    finally:
        pynvml.nvmlShutdown()


def wait_for_temperature(
    gpu_indices: list[int], target_c: float, stop: StopState, say: Callable[[str], None]
) -> bool:
    """Block until every GPU is <= target_c (or MAX_WAIT_S passes); True when stopped."""
    waited = 0.0
    while waited < MAX_WAIT_S:
        temps = read_temperatures(gpu_indices)
        if isinstance(temps, str):
            say(f"  cool-down skipped: {temps}")
            return stop.requested
        hottest = max(temps.values())
        if hottest <= target_c:
            return stop.requested
        say(f"  cool-down: GPU at {hottest:.0f} °C, waiting for {target_c:.0f} °C")
        if stop.sleep(POLL_S):
            return True
        waited += POLL_S
    say(f"  cool-down: still above {target_c:.0f} °C after {MAX_WAIT_S:.0f} s; going on")
    return stop.requested
