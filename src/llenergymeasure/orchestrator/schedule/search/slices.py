"""An offline trial followed slice by slice for the search's pruner (`search.pruner`: median,
successive_halving, hyperband).

Its container reports the window so far each tenth of `min_window_s` (`contract.pruning`); each
new slice's objective is reported to the trial's Optuna trial, whose pruner says whether it
trails the other trials' at that slice. A trial it stops gets its `slices` manifest line (the
values told, and why) before its container is asked to stop; every other followed run gets its
line when it ends. --resume tells the sampler the recorded values and never decides again for
a recorded run: a pruned run whose stop was not yet recorded is recorded pruned, not rerun.

Only a search trial (cycle 0) of an offline configuration is followed: a re-measurement and a
race run are the measurements that decide, and a serving trial's constraints are settled in
its container.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from llenergymeasure.config.search import SLICE_PRUNERS, SearchConfig
from llenergymeasure.contract.pruning import SLICES
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import SliceRecord
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.work_files import ProgressTail

# Told a slice's value, the trial's pruner says whether to stop it.
Report = Callable[[int, float], bool]


class SliceWatch:
    def __init__(self, search: SearchConfig, manifest: Manifest, study_dir: Path) -> None:
        self.pruner = search.pruner if search.pruner in SLICE_PRUNERS else None
        self.metric = search.goals[0].metric if self.pruner is not None else ""
        self.manifest, self.paths = manifest, StudyPaths(study_dir)
        self.tails: dict[str, ProgressTail] = {}
        self.values: dict[str, dict[int, float]] = {}

    def follows(self, run: PlannedRun) -> bool:
        return self.pruner is not None and run.cycle == 0 and run.config.mode == "offline"

    def look(self, run_id: str, report: Report | None) -> str | None:
        """The run's new slices, each reported in turn (`report`: None once the trial can no
        longer be stopped); why the pruner stops it, recorded, or None."""
        tail = self.tails.get(run_id)
        if tail is None:
            tail = self.tails[run_id] = ProgressTail(self.paths.work(run_id) / WorkPaths.PROGRESS)
        values = self.values.setdefault(run_id, {})
        for event in tail.read_new():
            value = (event.figures or {}).get(self.metric) if event.event == "slice" else None
            if event.i is None or value is None or not math.isfinite(value):
                continue
            values[event.i] = value
            if report is not None and report(event.i, value):
                why = (
                    f"pruned: {self.metric} = {value:.4g} over the first "
                    f"{event.i} of {SLICES} slices of its window trails the other trials' "
                    f"there ({self.pruner} pruner)"
                )
                self._record(run_id, why)
                return why
        return None

    def ended(self, run_id: str) -> None:
        """A followed run has its outcome: its slices not yet recorded, recorded."""
        if run_id in self.tails:  # a run it stopped was recorded then, and let go
            self.look(run_id, None)
            self._record(run_id, None)

    def recorded(self, run_id: str) -> SliceRecord | None:
        return self._recorded().get(run_id)

    def _recorded(self) -> dict[str, SliceRecord]:
        search = self.manifest.record.search
        return search.slices if search is not None else {}

    def _record(self, run_id: str, pruned: str | None) -> None:
        self.tails.pop(run_id, None)
        values = self.values.pop(run_id, {})
        self.manifest.add_slices(SliceRecord(run_id=run_id, values=values, pruned=pruned))
