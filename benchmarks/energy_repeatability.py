"""Energy repeatability and a power-limit sweep on one GPU, through llem's own code paths.

1. The same stable configuration `--repeats` times, each in a fresh llem-experiment process (as
   each run of a study gets a fresh container). Per run: J/output token (raw and adjusted for the
   idle baseline), the counter's and the power integral's energy over the window and their
   ratio, the counter's measured update period, the instrument uncertainty and the validity
   verdict. Then the coefficient of variation (sample stdev / mean) of J/token over the repeats.
   Target: <= 2 %.
2. With `--power-limits` (root): one run per limit, set on GPU 0 by the host's `GpuKeeper`
   (recorded in a ledger first, read back, put back after the run however it ends), with
   `gpu.power_limit_w` in the run's config as a study would have it. Prints J/token against the
   limit the container read back. `auto`: the GPU's highest, middle and lowest allowed limits.

The model has random weights: the figures describe the harness and the GPU, not any model. On a
machine without a GPU the energy figures are null (their reasons are printed) and only the
throughput's spread is measured.

    python benchmarks/energy_repeatability.py [--repeats 5] [--power-limits auto|W,W,...]
        [--json PATH] [--window-s 12] [--thermal-max-s 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from experiment_process import run_experiment
from llenergymeasure.contract.gpu_settings import GpuSettings
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.errors import UserError
from llenergymeasure.experiment.tiny_model import make_tiny_model
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger
from llenergymeasure.orchestrator.machine.gpu_settings import (
    GpuControl,
    GpuKeeper,
    check_settings,
    host_control,
)

CV_TARGET_PCT = 2.0
GPU = 0


@dataclass(frozen=True)
class Shape:
    """The workload: big enough on a GPU for a steady draw, small enough for a CPU smoke run."""

    layers: int
    hidden: int
    batch_size: int
    prompts: int
    input_tokens: int
    new_tokens: int
    baseline_s: float

    @classmethod
    def for_device(cls, cuda: bool) -> Shape:
        if cuda:
            return cls(8, 1536, 32, 64, 256, 128, baseline_s=5.0)
        return cls(2, 128, 4, 8, 32, 16, baseline_s=0.5)


@dataclass
class RunFigures:
    label: str
    j_per_token: float | None
    adjusted_j_per_token: float | None
    tokens_per_s: float
    counter_j: float | None
    integral_j: float | None
    counter_integral_ratio: float | None
    counter_update_ms: float | None
    instrument_pct: float | None
    mean_power_w: float | None
    power_limit_w: float | None
    window_s: float
    validity: list[str]
    energy_reason: str | None

    @classmethod
    def of(cls, label: str, result: ExperimentResult) -> RunFigures:
        e = result.energy
        limits = [g.power_limit_w for g in result.environment.gpus if g.power_limit_w]
        return cls(
            label=label,
            j_per_token=e.j_per_output_token,
            adjusted_j_per_token=e.adjusted_j_per_output_token,
            tokens_per_s=result.throughput.output_tokens_per_s,
            counter_j=e.gpu_j if e.gpu_source == "nvml_energy_counter" else None,
            integral_j=e.integral_gpu_j,
            counter_integral_ratio=e.counter_integral_ratio,
            counter_update_ms=e.counter_update_ms,
            instrument_pct=e.instrument_uncertainty_pct,
            mean_power_w=e.mean_gpu_power_w,
            power_limit_w=min(limits) if limits else None,
            window_s=result.timings.window_s,
            validity=[f"{r.code}: {r.detail}" for r in e.validity.reasons],
            energy_reason=e.gpu_j_reason,
        )

    def line(self) -> str:
        def num(value: float | None, fmt: str, unit: str = "") -> str:
            return "n/a" if value is None else f"{value:{fmt}}{unit}"

        verdict = "valid" if not self.validity else "INVALID " + "; ".join(self.validity)
        return (
            f"{self.label}: {num(self.j_per_token, '.5f', ' J/tok')} "
            f"(adjusted {num(self.adjusted_j_per_token, '.5f')}), "
            f"{self.tokens_per_s:.1f} tok/s, counter {num(self.counter_j, '.1f', ' J')}, "
            f"integral {num(self.integral_j, '.1f', ' J')}, "
            f"ratio {num(self.counter_integral_ratio, '.4f')}, "
            f"counter update {num(self.counter_update_ms, '.1f', ' ms')}, "
            f"instrument u {num(self.instrument_pct, '.2f', ' %')}, "
            f"mean {num(self.mean_power_w, '.0f', ' W')}, "
            f"limit {num(self.power_limit_w, '.0f', ' W')}, window {self.window_s:.1f} s; "
            + (verdict if self.energy_reason is None else f"energy n/a: {self.energy_reason}")
        )


class Bench:
    """One model and one configuration; each run a fresh process on its own work folder."""

    def __init__(self, root: Path, cuda: bool, window_s: float, thermal_max_s: float) -> None:
        self.root, self.cuda, self.window_s = root, cuda, window_s
        self.thermal_max_s = thermal_max_s
        self.shape = Shape.for_device(cuda)
        self.model = make_tiny_model(
            root / "model", layers=self.shape.layers, hidden=self.shape.hidden, heads=16
        )
        self.runs = 0

    def describe(self) -> str:
        s = self.shape
        return (
            f"random-weight Llama, {s.layers} layers, hidden {s.hidden}, "
            f"{'bf16 on cuda' if self.cuda else 'fp32 on cpu'}; {s.prompts} prompts x "
            f"{s.input_tokens} tokens, batch {s.batch_size}, {s.new_tokens} new tokens, "
            f"window >= {self.window_s:g} s, baseline {s.baseline_s:g} s, "
            f"thermal warm-up up to {self.thermal_max_s:g} s"
        )

    def request(self, settings: GpuSettings) -> RunRequest:
        s = self.shape
        config: dict[str, Any] = {
            "model": str(self.model),
            "precision": "bf16" if self.cuda else "fp32",
            "gpu_count": 1 if self.cuda else 0,
            "n_prompts": s.prompts,
            "max_new_tokens": s.new_tokens,
            "prompts": {
                "source": "synthetic",
                "input_length": {"distribution": "fixed", "tokens": s.input_tokens},
            },
            "baseline": {"duration_s": s.baseline_s},
            "warmup": {"thermal_max_s": self.thermal_max_s},
            "min_window_s": self.window_s,
            "pytorch": {"batch_size": s.batch_size},
            "gpu": settings.model_dump(),
        }
        context = {
            "study_id": "bench",
            "study_name": "energy_repeatability",
            "run_id": f"{self.runs:04d}_bench_c0",
            "run_index": self.runs,
            "config_hash": "0" * 64,
            "cycle": 0,
            "offline": True,
        }
        return RunRequest.model_validate({"config": config, "context": context})

    def run(self, label: str, settings: GpuSettings | None = None) -> RunFigures:
        request = self.request(settings or GpuSettings())
        self.runs += 1
        figures = RunFigures.of(label, run_experiment(request, self.root / f"work{self.runs}"))
        print(figures.line(), flush=True)
        return figures


def cv_pct(values: list[float]) -> float | None:
    """Sample standard deviation over the mean, %; None for fewer than two values."""
    if len(values) < 2:
        return None
    return 100.0 * statistics.stdev(values) / statistics.fmean(values)


def spread_line(name: str, values: list[float | None], target: float | None = None) -> str:
    measured = [v for v in values if v is not None]
    cv = cv_pct(measured)
    if cv is None:
        return f"{name}: n/a ({len(measured)} of {len(values)} runs measured it)"
    verdict = (
        ""
        if target is None
        else f" (target <= {target:g} %: {'met' if cv <= target else 'NOT met'})"
    )
    return (
        f"{name}: mean {statistics.fmean(measured):.6g}, CV {cv:.2f} % over "
        f"{len(measured)} runs{verdict}"
    )


def repeats(bench: Bench, n: int) -> list[RunFigures]:
    print(f"== the same configuration {n} times", flush=True)
    runs = [bench.run(f"repeat {k + 1}") for k in range(n)]
    print(spread_line("J/output token", [r.j_per_token for r in runs], CV_TARGET_PCT))
    print(spread_line("adjusted J/output token", [r.adjusted_j_per_token for r in runs]))
    print(spread_line("output tok/s", [r.tokens_per_s for r in runs]))
    ratios = [r.counter_integral_ratio for r in runs if r.counter_integral_ratio is not None]
    if ratios:
        print(f"counter / integral: {min(ratios):.4f} .. {max(ratios):.4f}")
    return runs


def power_limits(wanted: str, control: GpuControl) -> list[float]:
    low, high = control.power_limit_range_w(GPU)
    if wanted == "auto":
        return [round(high), round((low + high) / 2), round(low)]
    return [float(w) for w in wanted.split(",")]


def sweep(bench: Bench, wanted: str) -> list[RunFigures]:
    print(f"== power-limit sweep ({wanted})", flush=True)
    try:
        control = host_control()
        limits = power_limits(wanted, control)
        settings = [GpuSettings(power_limit_w=w) for w in limits]
        check_settings(control, [GPU], settings)
    except UserError as error:
        print(f"power-limit sweep not run: {error}")
        return []
    keeper = GpuKeeper(control, GpuLedger(bench.root / "locks"))
    before = control.power_limit_w(GPU)
    runs = []
    for limit in settings:
        run_id = f"limit-{limit.power_limit_w:g}"
        (record,) = keeper.apply("energy-repeatability", run_id, [GPU], limit)
        try:
            figures = bench.run(f"limit {limit.power_limit_w:g} W", limit)
        finally:
            keeper.put_back([record])
        if record.clamped:
            effective = record.power_limit_w_effective
            print(f"  the driver clamped {limit.power_limit_w:g} W to {effective} W")
        runs.append(figures)
    after = control.power_limit_w(GPU)
    print(f"power limit before the sweep {before:g} W, after {after:g} W", flush=True)
    print("J/output token against the limit the container read back:")
    for r in runs:
        j = "n/a" if r.j_per_token is None else f"{r.j_per_token:.5f}"
        print(
            f"  {r.power_limit_w} W: {j} J/tok, {r.tokens_per_s:.1f} tok/s, {r.mean_power_w} W mean"
        )
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--power-limits", default=None, help="auto, or W,W,... (root)")
    parser.add_argument("--window-s", type=float, default=None, help="12 on a GPU, 2 on CPU")
    parser.add_argument("--json", type=Path, default=None, help="every run's figures, as JSON")
    parser.add_argument(
        "--thermal-max-s", type=float, default=0.0, help="warmup.thermal_max_s of every run"
    )
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    window_s = args.window_s or (12.0 if cuda else 2.0)
    root = Path(tempfile.mkdtemp(prefix="llem-repeat-"))
    bench = Bench(root, cuda, window_s, args.thermal_max_s)
    print(f"model: {bench.describe()}", flush=True)
    found = {"repeats": [asdict(r) for r in repeats(bench, args.repeats)]}
    if args.power_limits:
        found["sweep"] = [asdict(r) for r in sweep(bench, args.power_limits)]
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
