"""Cycle ordering and the gap that precedes each run."""

from __future__ import annotations

import random

from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.study.models import PlannedRun


def shuffle_seed(execution: ExecutionConfig, design_hash: str) -> int:
    """The shuffled order's seed: the study's own, else one derived from its design hash (so
    two studies with as many configurations do not shuffle alike, and a rerun shuffles the
    same)."""
    if execution.shuffle_seed is not None:
        return execution.shuffle_seed
    return int(design_hash[:8], 16)


def cycle_order(n_configs: int, execution: ExecutionConfig, seed: int = 0) -> list[tuple[int, int]]:
    """(config_index, cycle) pairs in execution order.

    sequential: A0 A1 B0 B1; interleaved: A0 B0 A1 B1; shuffled: every cycle runs all
    configurations in an order drawn from `seed` (`shuffle_seed`) and the cycle number.
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
        random.Random(f"{seed}/{cycle}").shuffle(order)
        pairs.extend((config, cycle) for config in order)
    return pairs


def gap_before(previous: PlannedRun | None, run: PlannedRun, execution: ExecutionConfig) -> float:
    """Idle wait before `run`, s: none before the first run; the cycle gap where the cycle
    changes from the previous run; else the experiment gap."""
    return gap_between(previous.cycle if previous is not None else None, run.cycle, execution)


def gap_between(previous_cycle: int | None, cycle: int, execution: ExecutionConfig) -> float:
    """`gap_before` by cycle numbers: None for no previous run."""
    if previous_cycle is None:
        return 0.0
    if previous_cycle != cycle:
        return execution.gap_between_cycles_s
    return execution.gap_between_experiments_s
