"""Cycle ordering and the gap that precedes each run."""

from __future__ import annotations

import random

from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.study.models import PlannedRun


def cycle_order(n_configs: int, execution: ExecutionConfig) -> list[tuple[int, int]]:
    """(config_index, cycle) pairs in execution order.

    sequential: A0 A1 B0 B1; interleaved: A0 B0 A1 B1; shuffled: every cycle runs all
    configurations in an order drawn from `shuffle_seed` and the cycle number (reproducible).
    """
    configs = range(n_configs)
    cycles = range(execution.n_cycles)
    if execution.cycle_order == "sequential":
        return [(config, cycle) for config in configs for cycle in cycles]
    if execution.cycle_order == "interleaved":
        return [(config, cycle) for cycle in cycles for config in configs]
    pairs: list[tuple[int, int]] = []
    for cycle in cycles:
        order = list(configs)
        random.Random(f"{execution.shuffle_seed}/{cycle}").shuffle(order)
        pairs.extend((config, cycle) for config in order)
    return pairs


def gap_before(previous: PlannedRun | None, run: PlannedRun, execution: ExecutionConfig) -> float:
    """Idle wait before `run`, s: none before the first run; the cycle gap where the cycle
    changes from the previous run; else the experiment gap."""
    if previous is None:
        return 0.0
    if previous.cycle != run.cycle:
        return execution.gap_between_cycles_s
    return execution.gap_between_experiments_s
