"""A window's energy audited: the counter against the power integral over the same window, the
instrument uncertainty budget, and the validity of the GPU and CPU figures."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from llenergymeasure.contract.baseline import IdleBaseline
from llenergymeasure.contract.result import GpuInfo
from llenergymeasure.contract.workdir import utc_now
from llenergymeasure.energy.meter import WindowEnergy
from llenergymeasure.energy.sampler import (
    Row,
    performance_throttles,
    rows_by_gpu,
    temperatures_by_gpu,
)
from llenergymeasure.energy.uncertainty import (
    BASELINE,
    EDGE,
    INTEGRAL_SAMPLING,
    Budget,
    baseline_j,
    baseline_sem_w,
    edge_j,
    integral_sampling_j,
)
from llenergymeasure.energy.validity import (
    GpuEvidence,
    GpuWindow,
    cpu_validity,
    gpu_validity,
    largest_gap_s,
)
from llenergymeasure.experiment.instruments import Instruments
from llenergymeasure.experiment.measured import Measured, Phases


@dataclass(frozen=True)
class Attribution:
    """What makes a window's GPU energy not this run's: other processes, the wrong GPUs."""

    other_processes: int
    identity_mismatch: str | None


def attribution(measured: Measured, ins: Instruments, granted: list[str]) -> Attribution:
    crowded = [n - 1 for n in measured.gpu_process_counts if n > 1]
    mismatch = None
    if ins.gpus is not None and granted:
        metered = [g.uuid for g in ins.gpus.static_info()]
        if sorted(metered) != sorted(granted):
            mismatch = f"NVML metered {metered}, the host granted {granted}"
    return Attribution(max(crowded, default=0), mismatch)


def _per_instant(rows: list[Row]) -> tuple[list[float], list[float]]:
    """(times, power summed over GPUs) at each sampling instant with every GPU's reading."""
    totals: dict[float, list[float]] = defaultdict(list)
    for r in rows:
        if r.sample.power_w is not None:
            totals[r.t_s].append(r.sample.power_w)
    width = max((len(v) for v in totals.values()), default=0)
    kept = sorted((t, sum(v)) for t, v in totals.items() if len(v) == width)
    return [t for t, _ in kept], [p for _, p in kept]


class EnergyAudit:
    """Audits one window; `fields()` gives the Energy section's audit fields."""

    def __init__(
        self, phases: Phases, measured: Measured, ins: Instruments, attributed: Attribution
    ) -> None:
        self.phases, self.measured, self.ins, self.attributed = phases, measured, ins, attributed
        self.window: WindowEnergy = measured.window
        self.rows = ins.rows()
        self.info: list[GpuInfo] = ins.gpus.static_info() if ins.gpus is not None else []

    def fields(self) -> dict[str, Any]:
        integral, integral_why = self._integral()
        ratio, ratio_why = self._ratio(integral, integral_why)
        gap, gap_why = self._gap()
        budget, budget_why = self._budget()
        gpu_j = self.window.gpu_j
        pct = None
        if budget is not None and gpu_j:
            pct = budget.instrument_j / abs(gpu_j) * 100
        adjusted = adjusted_why = None
        if budget is None:
            adjusted_why = budget_why
        else:
            term, term_why = self._baseline_term()
            if term is None:
                adjusted_why = term_why
            else:
                budget = Budget({**budget.terms_j, BASELINE: term})
                adjusted = budget.adjusted_j
        update = self.phases.counter_update_s
        return {
            "integral_gpu_j": integral,
            "integral_gpu_j_reason": integral_why,
            "counter_integral_ratio": ratio,
            "counter_integral_ratio_reason": ratio_why,
            "largest_sample_gap_ms": gap * 1000 if gap is not None else None,
            "largest_sample_gap_ms_reason": gap_why,
            "counter_update_ms": update * 1000 if update is not None else None,
            "counter_update_ms_reason": None if update is not None else self._update_reason(),
            "instrument_uncertainty_j": budget.instrument_j if budget is not None else None,
            "instrument_uncertainty_j_reason": budget_why,
            "instrument_uncertainty_pct": pct,
            "instrument_uncertainty_pct_reason": None
            if pct is not None
            else (budget_why or "no GPU energy to relate it to"),
            "adjusted_uncertainty_j": adjusted,
            "adjusted_uncertainty_j_reason": adjusted_why,
            "uncertainty_terms_j": budget.terms_j if budget is not None else {},
            "validity": gpu_validity(self._evidence(ratio, gap)),
            "cpu_validity": cpu_validity(self.window.cpu_package_reason, self.window.duration_s),
        }

    # the counter's check ----------------------------------------------------------------------
    def _integral(self) -> tuple[float | None, str | None]:
        if self.ins.sampler is None:
            return None, self.ins.gpu_reason or "no power sampler"
        per_gpu = self.ins.meter.power_integral(self.window.start_s, self.window.end_s)
        if per_gpu is None:
            return None, "the power samples do not span the window"
        return float(sum(per_gpu)), None

    def _ratio(
        self, integral: float | None, integral_why: str | None
    ) -> tuple[float | None, str | None]:
        if self.window.gpu_source != "nvml_energy_counter":
            return None, "no counter reading to compare (the energy is not the counter's)"
        if integral is None:
            return None, integral_why
        if integral <= 0:
            return None, "the power integral is zero"
        return (self.window.gpu_j or 0.0) / integral, None

    def _gap(self) -> tuple[float | None, str | None]:
        if self.ins.sampler is None:
            return None, self.ins.gpu_reason or "no power sampler"
        gaps = [
            largest_gap_s([r.t_s for r in rows], self.window.start_s, self.window.end_s)
            for rows in rows_by_gpu(self.rows).values()
        ]
        if not gaps or any(g is None for g in gaps):
            return None, "the power samples do not span the window"
        return max(g for g in gaps if g is not None), None

    # the uncertainty budget -------------------------------------------------------------------
    def _update_reason(self) -> str:
        return self.phases.counter_update_reason or "not measured"

    def _budget(self) -> tuple[Budget | None, str | None]:
        w = self.window
        if w.gpu_j is None:
            return None, w.gpu_reason or "GPU energy was not measured"
        mean_w = w.gpu_j / w.duration_s if w.duration_s > 0 else 0.0
        if w.gpu_source == "nvml_energy_counter":
            if self.phases.counter_update_s is None:
                return None, f"counter update period unknown: {self._update_reason()}"
            return Budget({EDGE: edge_j(mean_w, self._edge_period_s())}), None
        times, powers = _per_instant([r for r in self.rows if w.start_s <= r.t_s <= w.end_s])
        terms = {EDGE: edge_j(mean_w, self._power_period_s())}
        terms[INTEGRAL_SAMPLING] = integral_sampling_j(times, powers)
        return Budget(terms), None

    def _edge_period_s(self) -> float:
        """The counter's step; where the edges were interpolated between the sampler's counter
        readings (a window chosen after the fact), the sampler's interval when longer."""
        period = self.phases.counter_update_s or 0.0
        if not self.window.edges_read and self.ins.sampler is not None:
            period = max(period, self.ins.sampler.interval_s)
        return period

    def _power_period_s(self) -> float:
        gpus, sampler = self.ins.gpus, self.ins.sampler
        interval = sampler.interval_s if sampler is not None else 0.0
        return max(interval, gpus.power_average_s if gpus is not None else 0.0)

    def _baseline_term(self) -> tuple[float | None, str]:
        """The idle baseline's own spread carried over the window (adjusted energy only); a
        reused baseline's as it was measured."""
        if self.phases.reused is not None:
            sem = self.phases.reused.baseline.gpu_sem_w
            return baseline_j(sem, self.window.duration_s), "the reused baseline has no spread"
        base = self.phases.baseline
        if base is None:
            return None, "baseline disabled in the config"
        if base.gpu_j is None:
            return None, base.gpu_reason or "baseline GPU energy was not measured"
        term = baseline_j(self._baseline_sem_w, self.window.duration_s)
        return term, "fewer than two baseline power samples"

    @functools.cached_property
    def _baseline_sem_w(self) -> float | None:
        """This run's own baseline's standard error (the term and the record read it)."""
        base = self.phases.baseline
        if base is None:
            return None
        _, powers = _per_instant([r for r in self.rows if base.start_s <= r.t_s <= base.end_s])
        return baseline_sem_w(powers, base.duration_s, self._power_period_s())

    def idle_baseline(self) -> IdleBaseline | None:
        """The idle baseline the figures are from: this run's own as measured (what a later
        run may reuse), the reused one, or None (disabled)."""
        if self.phases.reused is not None:
            return self.phases.reused.baseline
        base = self.phases.baseline
        if base is None:
            return None
        cpu = None
        if base.cpu_package_j is not None:
            cpu = (base.cpu_package_j + (base.dram_j or 0.0)) / base.duration_s
        in_window = [r for r in self.rows if base.start_s <= r.t_s <= base.end_s]
        temperatures = temperatures_by_gpu(in_window)
        warmest = [max(temperatures[g.index]) for g in self.info if temperatures.get(g.index)]
        return IdleBaseline(
            measured_at=utc_now(),
            duration_s=base.duration_s,
            gpu_uuids=[g.uuid for g in self.info],
            per_gpu_w=(
                [j / base.duration_s for j in base.per_gpu_j]
                if base.per_gpu_j is not None
                else None
            ),
            gpu_sem_w=self._baseline_sem_w if base.gpu_j is not None else None,
            cpu_w=cpu,
            max_temperature_c=warmest if self.info and len(warmest) == len(self.info) else None,
        )

    # validity ---------------------------------------------------------------------------------
    def _evidence(self, ratio: float | None, gap: float | None) -> GpuEvidence:
        w, rows = self.window, self.measured.window_rows
        temperatures = temperatures_by_gpu(rows)
        base = self.phases.baseline
        reused = self.phases.reused.baseline.per_gpu_w if self.phases.reused else None
        gpus = []
        for k, info in enumerate(self.info):
            per_j = w.per_gpu_j[k] if w.per_gpu_j is not None else None
            idle = None
            if reused is not None and k < len(reused):
                idle = reused[k]
            elif base is not None and base.per_gpu_j is not None and base.duration_s > 0:
                idle = base.per_gpu_j[k] / base.duration_s
            mean = per_j / w.duration_s if per_j is not None and w.duration_s else None
            gpus.append(
                GpuWindow(
                    mean_power_w=mean,
                    idle_power_w=idle,
                    power_limit_w=info.power_limit_w,
                    temperatures_c=temperatures.get(info.index, []),
                    mig=info.mig_mode,
                )
            )
        return GpuEvidence(
            energy_reason=None if w.gpu_j is not None else (w.gpu_reason or "not measured"),
            integral_only=w.gpu_source == "nvml_power_integral",
            counter_reset=w.counter_reset,
            window_s=w.duration_s,
            counter_update_s=self.phases.counter_update_s,
            largest_gap_s=gap,
            sample_interval_s=self.ins.sampler.interval_s if self.ins.sampler else None,
            counter_integral_ratio=ratio,
            gpus=gpus,
            throttles=performance_throttles(rows),
            other_processes=self.attributed.other_processes,
            identity_mismatch=self.attributed.identity_mismatch,
            idle_reused_from=(
                None
                if self.phases.reused is None
                else f"reused from run {self.phases.reused.origin.run_id}, "
                f"{self.phases.reused.origin.age_s:.0f} s old"
            ),
        )
