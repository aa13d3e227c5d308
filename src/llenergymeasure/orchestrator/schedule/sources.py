"""Where the scheduler's runs come from: a fixed plan (a grid), or a search that asks its
sampler for the next trial when a slot is free and learns from each run as it ends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque

from llenergymeasure.contract.pruning import LatencyBound
from llenergymeasure.study.manifest_models import RunRecord
from llenergymeasure.study.models import PlannedRun


class RunSource(ABC):
    """The scheduler's queue: the head run to start, put back when requeued, told of ends."""

    def __init__(self, queued: list[PlannedRun]) -> None:
        self.queued: deque[PlannedRun] = deque(queued)

    @property
    @abstractmethod
    def total(self) -> int:
        """Runs the study holds in all (a search: at most), for the progress display."""

    def head(self) -> PlannedRun | None:
        """The next run to start; None: none now (a search waits for a run to end)."""
        return self.queued[0] if self.queued else None

    def take(self) -> PlannedRun:
        return self.queued.popleft()

    def put_back(self, run: PlannedRun) -> None:
        """A run the executor lost goes first again."""
        self.queued.appendleft(run)

    def following(self, run: PlannedRun) -> None:
        """A run an earlier llem started is followed, not started again."""
        self.queued.remove(run)

    def ended(self, run_id: str) -> None:  # noqa: B027 - a grid learns nothing from an end
        """A run has its outcome in the manifest."""

    @property
    def more(self) -> bool:
        """Whether runs may still come (queued, or a search still asking)."""
        return bool(self.queued)

    # A run that fails is part of what a search learns (an infeasible region), not a failure of
    # the study; in a grid it is a hole in the results.
    learns_from_failures = False

    def exit_code(self, failed: list[RunRecord]) -> int:
        """The study's exit code once every run has its outcome: 1 if some did not complete."""
        return 1 if failed else 0

    def prune_bounds(self, run: PlannedRun) -> list[LatencyBound]:
        """Constraints the run's container may stop its load on (a search's trials; a grid's
        runs are measured in full)."""
        return []

    def prunes(self, in_flight: list[str]) -> dict[str, str]:
        """Runs in flight to stop now as pruned trials, each with why (a search's pruner; a
        grid's runs are measured in full)."""
        return {}


class PlannedRuns(RunSource):
    """A grid: the planned runs still to do, in order."""

    def __init__(self, queued: list[PlannedRun], total: int) -> None:
        super().__init__(queued)
        self._total = total

    @property
    def total(self) -> int:
        return self._total
