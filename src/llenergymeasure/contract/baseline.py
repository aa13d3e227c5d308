"""An idle baseline as a run records it, and as the host hands it to a later run that reuses it
(`baseline.reuse_s`): the host picks it, the container decides whether it still holds."""

from __future__ import annotations

from pydantic import Field

from llenergymeasure.contract.config import Strict

# A reused baseline holds while each GPU is no warmer than the baseline's warmest reading by
# more than this: NVML reads temperature in whole degrees.
REUSE_TEMPERATURE_MARGIN_C = 1.0


class IdleBaseline(Strict):
    """The idle reading of one run's container, with its model loaded."""

    measured_at: str = Field(description="UTC, ISO 8601: the end of its window.")
    duration_s: float = Field(gt=0)
    gpu_uuids: list[str] = Field(default_factory=list, description="The GPUs it read.")
    per_gpu_w: list[float] | None = Field(description="Idle power per GPU, W.")
    gpu_sem_w: float | None = Field(
        description="Standard error of the summed idle GPU power, W (its spread over the "
        "window's independent samples); null with fewer than two samples."
    )
    cpu_w: float | None = Field(description="Idle CPU package (+DRAM) power, W.")
    max_temperature_c: list[float] | None = Field(
        description="Each GPU's warmest reading during the window, C."
    )


class BaselineOrigin(Strict):
    """Where a reused baseline came from."""

    run_id: str = Field(description="The run of this study that measured it.")
    age_s: float = Field(ge=0, description="Its age when this run started, s.")


class ReusedBaseline(Strict):
    """What the host offers a run in place of its own baseline."""

    baseline: IdleBaseline
    origin: BaselineOrigin

    def refusal(self, temperatures_c: list[float | None]) -> str | None:
        """Why the offered baseline does not hold for GPUs now at `temperatures_c` (None: it
        holds). A GPU warmer than the baseline's warmest reading idles at a higher power."""
        warmest = self.baseline.max_temperature_c
        if warmest is None:
            return None if not temperatures_c else "it has no temperature to compare with"
        if len(warmest) != len(temperatures_c):
            return f"it read {len(warmest)} GPU(s), this run has {len(temperatures_c)}"
        for k, (now, then) in enumerate(zip(temperatures_c, warmest, strict=True)):
            if now is None:
                return f"GPU position {k} reports no temperature"
            if now > then + REUSE_TEMPERATURE_MARGIN_C:
                return (
                    f"GPU position {k} is at {now:g} C, above the baseline's {then:g} C "
                    f"(+{REUSE_TEMPERATURE_MARGIN_C:g})"
                )
        return None
