"""Before a run starts in a slot: the gap after the slot's previous run, then the cool-down of
its GPUs. One gate for every place a run starts: the local scheduler (per GPU or CPU group,
polled each tick) and a cluster node (its last run, waited out before the container starts).

Gaps belong to what a run held: a GPU's gap starts when its own previous run ended. The gap is
the cycle gap where the cycle changes, else the experiment gap (`study.order.gap_between`).
`llem run --no-gaps` hands the gate settings without gaps or cool-down.
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.machine.probes import HostProbes
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.study.order import gap_between

# Cool-down (execution.cooldown_to_temp_c): how often the temperature is read while waiting, and
# the longest wait before the run starts anyway (said on the display).
COOLDOWN_POLL_S = 2.0
COOLDOWN_MAX_WAIT_S = 1800.0


@dataclass(frozen=True)
class Freed:
    """When a resource (a GPU, a CPU group, a node) was last given back, after which cycle."""

    at: float  # on the gate's clock
    cycle: int


@dataclass
class _Waiting:
    """The run the gate holds back now."""

    run_id: str
    gap_shown: bool = False
    skipped: bool = False
    cooldown_since: float | None = None
    next_cooldown_check: float = 0.0


def enter_pressed() -> bool:
    """On a terminal, Enter skips the gap being waited out."""
    if not sys.stdin.isatty():
        return False
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready:
        sys.stdin.readline()
        return True
    return False


class Gate:
    def __init__(
        self,
        execution: ExecutionConfig | None,
        probes: HostProbes,
        say: Display,
        *,
        clock: Callable[[], float] = time.monotonic,
        skip: Callable[[], bool] = lambda: False,
    ) -> None:
        """`execution` None: a gate that never waits (the executor's nodes wait instead);
        `skip`: whether the person at the terminal asked to skip the gap now."""
        self.execution, self.probes, self.say = execution, probes, say
        self.clock, self.skip = clock, skip
        self.freed: dict[str, Freed] = {}
        self.waiting: _Waiting | None = None

    def give_back(self, resources: tuple[str, ...], cycle: int, at: float | None = None) -> None:
        """A run of `cycle` gave back `resources` (now, or at `at` on the gate's clock)."""
        when = self.clock() if at is None else at
        for resource in resources:
            self.freed[resource] = Freed(when, cycle)

    def ready(
        self, run_id: str, cycle: int, resources: tuple[str, ...], gpus: tuple[int, ...]
    ) -> bool:
        """Whether the run may start now: its gap has passed (or was skipped) and its GPUs are
        cool enough. Never blocks; says what it waits for."""
        if self.execution is None:
            return True
        if self.waiting is None or self.waiting.run_id != run_id:
            self.waiting = _Waiting(run_id)
        waiting = self.waiting
        left, reason = self.gap_left(cycle, resources)
        if left > 0 and not waiting.skipped:
            if not waiting.gap_shown:
                waiting.gap_shown = True
                self.say.gap(left, reason)
            else:
                self.say.gap_left(left)
            waiting.skipped = self.skip()
            if not waiting.skipped:
                return False
        if not self._cool_enough(gpus, waiting):
            return False
        self.waiting = None
        return True

    def wait(
        self,
        run_id: str,
        cycle: int,
        resources: tuple[str, ...],
        gpus: tuple[int, ...],
        stop: StopState,
    ) -> None:
        """Block until `ready` (or a stop is requested)."""
        while not self.ready(run_id, cycle, resources, gpus):
            left, _ = self.gap_left(cycle, resources)
            if stop.sleep(left if left > 0 else COOLDOWN_POLL_S):
                return

    def gap_left(self, cycle: int, resources: tuple[str, ...]) -> tuple[float, str]:
        """Seconds until the gap after the resources' previous run(s) has passed, and why."""
        if self.execution is None:
            return 0.0, ""
        now = self.clock()
        left, reason = 0.0, ""
        for resource in resources:
            freed = self.freed.get(resource)
            if freed is None:
                continue
            end = freed.at + gap_between(freed.cycle, cycle, self.execution)
            if end - now > left:
                left = end - now
                reason = "between cycles" if freed.cycle != cycle else "between experiments"
        return left, reason

    def _cool_enough(self, gpus: tuple[int, ...], waiting: _Waiting) -> bool:
        target = self.execution.cooldown_to_temp_c if self.execution is not None else None
        if target is None or not gpus:
            return True
        now = time.monotonic()
        if now < waiting.next_cooldown_check:
            return False
        waiting.next_cooldown_check = now + COOLDOWN_POLL_S
        temps = self.probes.temperatures(list(gpus))
        if isinstance(temps, str):
            self.say.note(f"  cool-down skipped: {temps}")
            return True
        hottest = max(temps.values())
        if hottest <= target:
            return True
        if waiting.cooldown_since is None:
            waiting.cooldown_since = now
        elif now - waiting.cooldown_since > COOLDOWN_MAX_WAIT_S:
            self.say.note(
                f"  cool-down: still above {target:.0f} °C after {COOLDOWN_MAX_WAIT_S:.0f} s; "
                "going on"
            )
            return True
        self.say.note(f"  cool-down: GPU at {hottest:.0f} °C, waiting for {target:.0f} °C")
        return False
