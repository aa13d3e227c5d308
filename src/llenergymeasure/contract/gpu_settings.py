"""`gpu:`: settings the host applies to a run's GPUs through NVML before its container starts
and restores after it: the power limit and a locked core clock, the first knobs an energy study
turns. Each is an experiment key like any other: sweepable, part of the configuration's hash."""

from __future__ import annotations

from pydantic import Field, field_validator

from llenergymeasure.contract.fields import Strict


class GpuSettings(Strict):
    power_limit_w: float | None = Field(
        None,
        gt=0,
        description="NVML power limit on each of the run's GPUs, W; null: left as it is. The "
        "effective limit is read back and recorded (a value the driver clamps is reported).",
    )
    locked_clocks_mhz: tuple[int, int] | None = Field(
        None,
        description="Lock the GPU core clock to [min, max] MHz (one number: min = max); null: "
        "left unlocked.",
    )

    @field_validator("locked_clocks_mhz", mode="before")
    @classmethod
    def _one_or_two(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (int(value), int(value))
        return value

    @field_validator("locked_clocks_mhz")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 < value[0] <= value[1]:
            raise ValueError("locked_clocks_mhz must be [min, max] with 0 < min <= max")
        return value

    @property
    def any(self) -> bool:
        return self.power_limit_w is not None or self.locked_clocks_mhz is not None
