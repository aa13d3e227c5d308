"""The energy audit over a synthesised sample stream: an idle baseline, then a 300 W window
metered by the counter; the counter checked against the integral, the budget, the validity."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llenergymeasure.contract.result import GpuInfo
from llenergymeasure.energy.gpus import GpuSample
from llenergymeasure.energy.meter import EnergyMeter, WindowEnergy
from llenergymeasure.energy.rapl import Rapl
from llenergymeasure.energy.sampler import PowerSampler, Row
from llenergymeasure.energy.uncertainty import baseline_j, edge_j
from llenergymeasure.experiment.energy_audit import Attribution, EnergyAudit
from llenergymeasure.experiment.instruments import Instruments
from llenergymeasure.experiment.measured import Phases

BASE = (0.0, 10.0)
WINDOW = (15.0, 35.0)


class OneGpu:
    """What the audit reads of the metered GPUs: static facts and the power reading's period."""

    counter_reason = None
    power_average_s = 0.0  # the instantaneous power field

    def static_info(self) -> list[GpuInfo]:
        return [
            GpuInfo(
                index=0,
                name="test GPU",
                uuid="GPU-0",
                memory_total_mb=1.0,
                power_limit_w=700.0,
                persistence_mode=True,
                mig_mode=False,
            )
        ]


def power_at(t: float) -> float:
    if BASE[0] <= t <= BASE[1]:
        return 79.0 if round(t * 10) % 2 else 81.0
    return 300.0 if 14.5 <= t <= 35.5 else 80.0


def rows(skip: tuple[float, float] | None = None, throttle: int = 0) -> list[Row]:
    times = [k / 10 for k in range(0, 401)]
    if skip is not None:
        times = [t for t in times if not skip[0] < t < skip[1]]
    return [
        Row(t, 0.0, "x", 0, GpuSample(power_at(t), 50.0, 1500.0, 90.0, 1.0, throttle))
        for t in times
    ]


def window(name: str, span: tuple[float, float], joules: float, **kw: Any) -> WindowEnergy:
    return WindowEnergy(
        name,
        span[0],
        span[1],
        kw.pop("source", "nvml_energy_counter"),
        [joules],
        None,
        None,
        "no RAPL",
        None,
        "no RAPL",
        edges_read=True,
        **kw,
    )


def audit(
    tmp_path: Path, counter_j: float = 6000.0, skip=None, throttle: int = 0, **kw: Any
) -> dict[str, Any]:
    sampler = PowerSampler(lambda: [], [0])
    sampler.rows = rows(skip, throttle)
    gpu = OneGpu()
    rapl = Rapl(tmp_path / "absent")
    meter = EnergyMeter(gpu, None, sampler, rapl, [0])  # type: ignore[arg-type]
    ins = Instruments(gpu, None, sampler, rapl, meter)  # type: ignore[arg-type]
    base = window("baseline", BASE, 800.0)
    phases = Phases(None, "none", 0.0, base, base, counter_update_s=0.1, counter_update_reason=None)
    win = window("window", WINDOW, counter_j, **kw)
    measured = SimpleNamespace(
        window=win, window_rows=[r for r in sampler.rows if 15 <= r.t_s <= 35]
    )
    return EnergyAudit(phases, measured, ins, Attribution(0, None)).fields()  # type: ignore[arg-type]


def test_a_steady_counter_window_is_valid_with_its_budget(tmp_path: Path) -> None:
    f = audit(tmp_path)
    assert f["integral_gpu_j"] == pytest.approx(6000.0)
    assert f["counter_integral_ratio"] == pytest.approx(1.0)
    assert f["largest_sample_gap_ms"] == pytest.approx(100.0)
    assert f["counter_update_ms"] == pytest.approx(100.0)
    edge = edge_j(300.0, 0.1)
    assert f["instrument_uncertainty_j"] == pytest.approx(edge)
    assert f["instrument_uncertainty_pct"] == pytest.approx(edge / 6000.0 * 100)
    base_powers = [power_at(k / 10) for k in range(0, 101)]
    base = baseline_j(base_powers, 10.0, 0.1, 20.0)
    assert f["uncertainty_terms_j"] == pytest.approx({"edge": edge, "baseline": base})
    assert f["adjusted_uncertainty_j"] == pytest.approx(math.hypot(edge, base))
    assert f["validity"].valid, f["validity"]


def test_a_counter_that_disagrees_with_the_integral_is_invalid(tmp_path: Path) -> None:
    f = audit(tmp_path, counter_j=6600.0)
    assert f["counter_integral_ratio"] == pytest.approx(1.1)
    assert [r.code for r in f["validity"].reasons] == ["counter_integral_mismatch"]


def test_a_gap_in_the_samples_is_invalid(tmp_path: Path) -> None:
    f = audit(tmp_path, skip=(20.0, 20.6))
    assert f["largest_sample_gap_ms"] == pytest.approx(600.0)
    assert [r.code for r in f["validity"].reasons] == ["sample_gap"]


@pytest.mark.parametrize(
    ("bitmask", "codes"),
    [(0x4, []), (0x40, ["throttled"]), (0x4 | 0x80, ["throttled"])],
)
def test_the_power_cap_is_the_runs_limit_but_heat_and_the_brake_are_faults(
    tmp_path: Path, bitmask: int, codes: list[str]
) -> None:
    f = audit(tmp_path, throttle=bitmask)
    assert [r.code for r in f["validity"].reasons] == codes


def test_the_integral_as_source_carries_its_sampling_term(tmp_path: Path) -> None:
    f = audit(tmp_path, source="nvml_power_integral")
    assert f["counter_integral_ratio"] is None and f["counter_integral_ratio_reason"]
    assert set(f["uncertainty_terms_j"]) == {"edge", "integral_sampling", "baseline"}
    assert f["uncertainty_terms_j"]["integral_sampling"] == pytest.approx(0.0)  # flat window
    assert [r.code for r in f["validity"].reasons] == ["integral_only"]


def test_a_reset_counter_is_named_beside_the_integral(tmp_path: Path) -> None:
    f = audit(tmp_path, source="nvml_power_integral", counter_reset=True)
    assert [r.code for r in f["validity"].reasons] == ["counter_reset", "integral_only"]


def test_no_counter_period_means_no_budget(tmp_path: Path) -> None:
    sampler = PowerSampler(lambda: [], [0])
    sampler.rows = rows()
    gpu = OneGpu()
    rapl = Rapl(tmp_path / "absent")
    ins = Instruments(gpu, None, sampler, rapl, EnergyMeter(gpu, None, sampler, rapl, [0]))  # type: ignore[arg-type]
    base = window("baseline", BASE, 800.0)
    phases = Phases(None, "none", 0.0, base, base, None, "NVML_ERROR_NOT_SUPPORTED")
    win = window("window", WINDOW, 6000.0)
    measured = SimpleNamespace(window=win, window_rows=[])
    f = EnergyAudit(phases, measured, ins, Attribution(0, None)).fields()  # type: ignore[arg-type]
    assert f["instrument_uncertainty_j"] is None
    assert "NVML_ERROR_NOT_SUPPORTED" in f["instrument_uncertainty_j_reason"]
    assert f["counter_update_ms_reason"] == "NVML_ERROR_NOT_SUPPORTED"
