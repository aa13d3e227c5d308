"""The energy audit over a synthesised sample stream: an idle baseline, then a 300 W window
metered by the counter; the counter checked against the integral, the budget, the validity."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llenergymeasure.contract.baseline import BaselineOrigin, IdleBaseline, ReusedBaseline
from llenergymeasure.contract.result import GpuInfo
from llenergymeasure.energy.gpus import GpuSample
from llenergymeasure.energy.meter import EnergyMeter, WindowEnergy
from llenergymeasure.energy.rapl import Rapl
from llenergymeasure.energy.sampler import PowerSampler, Row
from llenergymeasure.energy.uncertainty import baseline_j, baseline_sem_w, edge_j
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
    return auditor(tmp_path, counter_j, skip, throttle, **kw).fields()


def auditor(
    tmp_path: Path,
    counter_j: float = 6000.0,
    skip=None,
    throttle: int = 0,
    reused: ReusedBaseline | None = None,
    **kw: Any,
) -> EnergyAudit:
    sampler = PowerSampler(lambda: [], [0])
    sampler.rows = rows(skip, throttle)
    gpu = OneGpu()
    rapl = Rapl(tmp_path / "absent")
    meter = EnergyMeter(gpu, None, sampler, rapl, [0])  # type: ignore[arg-type]
    ins = Instruments(gpu, None, sampler, rapl, meter)  # type: ignore[arg-type]
    base = window("baseline", BASE, 800.0)
    phases = Phases(
        None,
        "none",
        0.0,
        base,
        None if reused else base,
        counter_update_s=0.1,
        counter_update_reason=None,
        reused=reused,
    )
    win = window("window", WINDOW, counter_j, **kw)
    measured = SimpleNamespace(
        window=win, window_rows=[r for r in sampler.rows if 15 <= r.t_s <= 35]
    )
    return EnergyAudit(phases, measured, ins, Attribution(0, None))  # type: ignore[arg-type]


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
    base = baseline_j(baseline_sem_w(base_powers, 10.0, 0.1), 20.0)
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


def test_a_measured_baseline_is_recorded_for_reuse_and_a_reused_one_carries_its_spread(
    tmp_path: Path,
) -> None:
    """The idle record of this run's baseline: per-GPU power, its standard error, its warmest
    reading. A later run that reuses it takes the same idle power and carries the same
    standard error over its own window; nothing of its own (it measured no baseline)."""
    own = auditor(tmp_path)
    idle = own.idle_baseline()
    assert idle is not None and idle.gpu_uuids == ["GPU-0"]
    assert idle.per_gpu_w == pytest.approx([80.0])
    assert idle.max_temperature_c == [50.0]
    base_powers = [power_at(k / 10) for k in range(0, 101)]
    assert idle.gpu_sem_w == pytest.approx(baseline_sem_w(base_powers, 10.0, 0.1))
    offered = ReusedBaseline(baseline=idle, origin=BaselineOrigin(run_id="r0", age_s=12.0))
    later = auditor(tmp_path, reused=offered)
    assert later.idle_baseline() == idle
    fields = later.fields()
    assert fields["uncertainty_terms_j"]["baseline"] == pytest.approx(idle.gpu_sem_w * 20.0)
    assert fields["uncertainty_terms_j"] == pytest.approx(own.fields()["uncertainty_terms_j"])


def test_a_reused_baseline_holds_only_while_the_gpus_are_no_warmer() -> None:
    idle = idle_of(max_temperature_c=[50.0, 52.0])
    offered = ReusedBaseline(baseline=idle, origin=BaselineOrigin(run_id="r0", age_s=3.0))
    assert offered.refusal([50.0, 53.0]) is None  # within the sensor's degree
    assert "GPU position 1 is at 54 C, above the baseline's 52 C" in offered.refusal([49.0, 54.0])
    assert "reports no temperature" in offered.refusal([None, 50.0])
    assert "it read 2 GPU(s), this run has 1" in offered.refusal([50.0])
    cpu = ReusedBaseline(
        baseline=idle_of(max_temperature_c=None),
        origin=BaselineOrigin(run_id="r0", age_s=3.0),
    )
    assert cpu.refusal([]) is None  # a CPU run: no GPU to have warmed


def idle_of(max_temperature_c: list[float] | None) -> IdleBaseline:
    gpus = len(max_temperature_c or [])
    return IdleBaseline(
        measured_at="2026-01-01T00:00:00.000+00:00",
        duration_s=30.0,
        per_gpu_w=[80.0] * gpus or None,
        gpu_sem_w=0.1 if gpus else None,
        cpu_w=None,
        max_temperature_c=max_temperature_c,
    )
