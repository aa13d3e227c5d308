"""Pure study logic: expansion into ordered runs, hashes, wall-time estimates, the manifest."""

from llenergymeasure.study.estimate import WallTimeEstimate, estimate_study, estimate_wall_time
from llenergymeasure.study.expand import Plan, PlannedConfig, expand
from llenergymeasure.study.hashing import canonical_json, config_hash, design_hash
from llenergymeasure.study.models import PlannedRun, SkippedCombination
from llenergymeasure.study.order import cycle_order, gap_before
from llenergymeasure.study.run_duration import RunEstimate, estimate_run

__all__ = [
    "Plan",
    "PlannedConfig",
    "PlannedRun",
    "RunEstimate",
    "SkippedCombination",
    "WallTimeEstimate",
    "canonical_json",
    "config_hash",
    "cycle_order",
    "design_hash",
    "estimate_run",
    "estimate_study",
    "estimate_wall_time",
    "expand",
    "gap_before",
]
