"""Two studies side by side: configurations paired by config hash, ratios B/A with CIs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llenergymeasure.results.instrument import instrument_u, value_at
from llenergymeasure.results.load import RunData, StudyData
from llenergymeasure.results.metrics import BY_COLUMN, COMPARED, for_study
from llenergymeasure.results.stats import ratio_of_means, ratio_with_instrument, summarise
from llenergymeasure.results.validity import gpu_energy_validity


@dataclass(frozen=True)
class MetricRatio:
    metric: str
    unit: str
    a_n: int
    a_mean: float | None
    b_n: int
    b_mean: float | None
    ratio: float | None  # mean(B) / mean(A), unitless
    ratio_ci95_low: float | None
    ratio_ci95_high: float | None


@dataclass(frozen=True)
class ConfigRef:
    config_hash: str
    backend: str
    model: str
    swept: dict[str, Any]


@dataclass(frozen=True)
class NotValid:
    """A pair's completed runs whose GPU energy was read but is not valid, per study."""

    a: int
    a_runs: int
    b: int
    b_runs: int


@dataclass(frozen=True)
class Comparison:
    study_a: str
    study_b: str
    valid_only: bool = False
    pairs: list[tuple[ConfigRef, list[MetricRatio]]] = field(default_factory=list)
    only_a: list[ConfigRef] = field(default_factory=list)
    only_b: list[ConfigRef] = field(default_factory=list)
    not_valid: dict[str, NotValid] = field(default_factory=dict)  # config hash -> counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_a": self.study_a,
            "study_b": self.study_b,
            "ratio": "mean(B) / mean(A) with a 95 % CI: bootstrap (cycles resampled per study); "
            "energy metrics widened by both studies' instrument uncertainty",
            "valid_only": self.valid_only,
            "pairs": [
                {
                    **asdict(ref),
                    "energy_not_valid": asdict(self.not_valid[ref.config_hash])
                    if ref.config_hash in self.not_valid
                    else None,
                    "metrics": [asdict(m) for m in metrics],
                }
                for ref, metrics in self.pairs
            ],
            "only_in_a": [asdict(ref) for ref in self.only_a],
            "only_in_b": [asdict(ref) for ref in self.only_b],
        }


def _by_hash(study: StudyData) -> dict[str, list[RunData]]:
    groups: dict[str, list[RunData]] = {}
    for run in study.runs:
        groups.setdefault(run.planned.config_hash, []).append(run)
    return groups


def _ref(runs: list[RunData]) -> ConfigRef:
    planned = runs[0].planned
    return ConfigRef(
        planned.config_hash, planned.config.backend, planned.config.model, planned.swept
    )


def _not_valid(run: RunData) -> bool:
    """A completed run whose GPU energy was read and judged not valid (`results.validity`)."""
    return run.result is not None and gpu_energy_validity(run.result.energy).not_valid


def _values(runs: list[RunData], metric: str) -> list[float | None]:
    """A metric's readings from the completed runs (a dotted path into ExperimentResult)."""
    return [value_at(run.result, metric) for run in runs if run.result is not None]


def _uncertainties(runs: list[RunData], metric: str) -> list[float | None]:
    """Each completed run's instrument uncertainty of `metric`, where it has one."""
    return [instrument_u(run.result, metric) for run in runs if run.result is not None]


def compare_studies(a: StudyData, b: StudyData, valid_only: bool = False) -> Comparison:
    """`valid_only`: the runs whose GPU energy is not valid are left out, as everywhere
    (`results.validity`); either way each pair counts them."""
    groups_a, groups_b = _by_hash(a), _by_hash(b)
    comparison = Comparison(a.manifest.study_id, b.manifest.study_id, valid_only)
    serving = a.has_serving or b.has_serving
    compared = [m.column for m in for_study(tuple(BY_COLUMN[c] for c in COMPARED), serving)]
    for digest, runs_a in groups_a.items():
        if digest not in groups_b:
            comparison.only_a.append(_ref(runs_a))
            continue
        runs_b = groups_b[digest]
        bad_a, bad_b = sum(map(_not_valid, runs_a)), sum(map(_not_valid, runs_b))
        if bad_a or bad_b:
            completed = [sum(1 for r in runs if r.result is not None) for runs in (runs_a, runs_b)]
            comparison.not_valid[digest] = NotValid(bad_a, completed[0], bad_b, completed[1])
        if valid_only:
            runs_a = [r for r in runs_a if not _not_valid(r)]
            runs_b = [r for r in runs_b if not _not_valid(r)]
        ratios = []
        for metric in compared:
            va, vb = _values(runs_a, metric), _values(runs_b, metric)
            sa, sb = summarise(va), summarise(vb)
            ratio = ratio_with_instrument(
                ratio_of_means(va, vb),
                (va, _uncertainties(runs_a, metric)),
                (vb, _uncertainties(runs_b, metric)),
            )
            ratios.append(
                MetricRatio(
                    metric=metric,
                    unit=BY_COLUMN[metric].unit,
                    a_n=sa.n,
                    a_mean=sa.mean,
                    b_n=sb.n,
                    b_mean=sb.mean,
                    ratio=ratio.ratio,
                    ratio_ci95_low=ratio.ci_low,
                    ratio_ci95_high=ratio.ci_high,
                )
            )
        comparison.pairs.append((_ref(groups_a[digest]), ratios))
    comparison.only_b.extend(
        _ref(runs) for digest, runs in groups_b.items() if digest not in groups_a
    )
    return comparison
