"""Warm-up until the GPU temperature is steady (`warmup.thermal_max_s`): the trailing rise read
from the sampler's rows, and the loop that stops on it or on the cap. The temperatures are
scripted here; a real GPU's are read where one is lent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.energy.gpus import GpuSample
from llenergymeasure.energy.sampler import Row, temperature_rise_c
from llenergymeasure.experiment.measured import HeatOutcome
from llenergymeasure.experiment.offline import OfflineSession


def row(t: float, gpu: int, temperature: float | None) -> Row:
    sample = GpuSample(100.0, temperature, 1000.0, 90.0, 1000.0, 0)
    return Row(t, t, "warmup", gpu, sample)


def test_the_rise_is_the_warmest_gpus_over_the_trailing_span() -> None:
    rows = [row(t, 0, 40 + t) for t in range(10)] + [row(t, 1, 50.0) for t in range(10)]
    assert temperature_rise_c(rows, since_s=6) == 3.0  # GPU 0: 46 -> 49
    assert temperature_rise_c(rows, since_s=9) is None  # one reading each: no rise to read
    cold = [row(t, 0, None) for t in range(10)]
    assert temperature_rise_c(cold, since_s=0) is None


@dataclass
class Heating:
    """Temperature rises 30 C over `ramp_s`, then holds; rows every 5 ms since the start."""

    ramp_s: float
    start: float = field(default_factory=time.perf_counter)
    sampler: object = object()
    gpu_reason: str | None = None

    def rows(self) -> list[Row]:
        now, t, out = time.perf_counter(), self.start, []
        while t <= now:
            out.append(row(t, 0, 40 + 30 * min(1.0, (t - self.start) / self.ramp_s)))
            t += 0.005
        return out


class Engine:
    def __init__(self) -> None:
        self.batches = 0

    def generate(self, prepared: Any) -> None:
        self.batches += 1
        time.sleep(0.01)

    def synchronize(self) -> None:
        pass


def session(instruments: Any, thermal: dict[str, float]) -> OfflineSession:
    offline = OfflineSession.__new__(OfflineSession)
    offline.config = ExperimentConfig(model="m", warmup=thermal)
    offline.instruments = instruments
    offline.adapter = Engine()
    return offline


def test_warmup_goes_on_until_the_temperature_is_steady() -> None:
    thermal = {"thermal_max_s": 2.0, "thermal_window_s": 0.1, "thermal_rise_c": 1.0}
    heat = session(Heating(ramp_s=0.3), thermal)._settle_heat(None)
    assert heat.settled is True and heat.rise_c is not None
    assert heat.rise_c <= 1.0
    assert 0.3 <= heat.duration_s < 2.0 and heat.batches > 10


def test_a_gpu_still_warming_at_the_cap_is_said() -> None:
    thermal = {"thermal_max_s": 0.3, "thermal_window_s": 0.1, "thermal_rise_c": 0.1}
    heat = session(Heating(ramp_s=10.0), thermal)._settle_heat(None)
    assert heat.settled is False
    assert heat.rise_c == pytest.approx(0.3, abs=0.15)  # 3 C/s over 0.1 s
    assert heat.duration_s >= 0.3


def test_without_a_sampler_nothing_is_judged() -> None:
    no_gpu = Heating(ramp_s=1.0, sampler=None, gpu_reason="gpu_count is 0")
    heat = session(no_gpu, {"thermal_max_s": 10.0})._settle_heat(None)
    assert heat == HeatOutcome(0.0, 0, None, None, "gpu_count is 0")
