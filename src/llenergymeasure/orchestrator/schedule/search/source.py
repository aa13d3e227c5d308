"""The search as the scheduler's run source.

When a slot is free and fewer than `execution.max_parallel` of the search's runs are open, the
next asking cell (round robin) asks its sampler: a suggestion the contract rejects is told as
infeasible at once (no container); one whose configuration already ran (or is running) reuses
that run's result; anything else is a new run, recorded in the manifest (trial line, then run
record) before it starts. As each run ends its judgement is told to every trial it measures.
A cell stops asking at `trials` distinct configurations, at `patience`, at `max_hours` of its
runs' wall time, or when its sampler only repeats itself; once its runs have ended, its best
configurations are run again (`confirm`), interleaved.

The manifest is the only record: everything here is rebuilt from it on `--resume`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.config.search import SearchConfig
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.schedule.search.sampler import CellSampler
from llenergymeasure.orchestrator.schedule.sources import RunSource
from llenergymeasure.orchestrator.schedule.study_folder import pending_record
from llenergymeasure.results.cells import number
from llenergymeasure.results.load import load_run
from llenergymeasure.results.search import Judgement, judge, judge_run, pareto_front
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import ConfirmRecord, RunRecord, TrialRecord
from llenergymeasure.study.models import PlannedRun, SearchPlan
from llenergymeasure.study.search_space import Cell, SearchRuns

# Suggestions in a row that run nothing new (already run, or rejected by the contract) after
# which a cell's space counts as exhausted for its sampler.
REPEATS_BEFORE_EXHAUSTED = 50
ENDED = ("completed", "failed")


@dataclass
class CellSearch:
    """One cell's search: its sampler, its trials in order, what each was told, why it
    stopped."""

    cell: Cell
    sampler: CellSampler
    trials: list[TrialRecord] = field(default_factory=list)
    told: dict[int, Judgement] = field(default_factory=dict)  # trial number -> judgement
    stopped: str | None = None
    repeats: int = 0  # suggestions in a row that ran nothing new
    confirmed: bool = False  # its confirmation runs are planned (or none were needed)
    suggested: set[str] = field(default_factory=set)  # distinct suggestions, as text

    def add(self, trial: TrialRecord) -> None:
        self.trials.append(trial)
        self.suggested.add(repr(sorted(trial.params.items())))

    @property
    def distinct_runs(self) -> int:
        return sum(1 for t in self.trials if t.run_id is not None and not t.reused)

    def tell(self, trial: TrialRecord, judgement: Judgement) -> None:
        self.sampler.tell(trial.number, trial.params, trial.sampler_attrs, judgement)
        self.told[trial.number] = judgement

    def without_improvement(self, search: SearchConfig) -> int:
        """Told trials, in trial order up to the first not yet told, since the last one that
        improved the best feasible value by at least min_improvement (relative)."""
        goal, best, since = search.goals[0], None, 0
        for trial in self.trials:
            judgement = self.told.get(trial.number)
            if judgement is None:
                break
            value = judgement.values[0] if judgement.feasible else None
            if value is not None and (
                best is None
                or (
                    goal.better(value, best)
                    and abs(value - best) >= search.min_improvement * abs(best)
                )
            ):
                best, since = value, 0
            else:
                since += 1
        return since

    def open_runs(self) -> set[str]:
        return {t.run_id for t in self.trials if t.run_id and t.number not in self.told}


class SearchSource(RunSource):
    def __init__(
        self,
        plan: SearchPlan,
        manifest: Manifest,
        study_dir: Path,
        *,
        inputs_dir: Path | None,
        max_open: int,
        display: Display,
    ) -> None:
        self.search = plan.search
        self.manifest, self.study_dir, self.display = manifest, study_dir, display
        self.max_open = max_open
        self.runs = SearchRuns.rebuilt(plan, manifest.record.search, inputs_dir)
        missing = [
            pending_record(r) for r in self.runs.runs if r.run_id not in manifest.record.runs
        ]
        if missing:  # a kill between a trial's line and its run's record
            manifest.add_runs(missing)
        self.cells = [CellSearch(cell, CellSampler(self.search, cell)) for cell in self.runs.cells]
        self.run_of: dict[str, str] = {}  # config hash -> the run measuring it (cycle 0)
        self.waiting: dict[str, list[tuple[int, int]]] = {}  # run id -> trials (cell, number)
        self.judged: dict[str, Judgement] = {}  # ended run id -> its judgement
        self.next_cell = 0
        super().__init__([r for r in self.runs.runs if not self._ended(r.run_id)])
        self._replay()

    # the record, replayed --------------------------------------------------------------------
    def _replay(self) -> None:
        record = self.manifest.record.search
        if record is not None:
            for trial in record.trials:
                self._follow(self.cells[trial.cell], trial)
            for cell_index, reason in record.stopped.items():
                self.cells[cell_index].stopped = reason
        for cell in self.cells:
            self._after_tell(cell)

    def _follow(self, cell: CellSearch, trial: TrialRecord) -> None:
        """A trial (recorded earlier, or just now): told at once if its outcome is known, else
        when its run ends."""
        cell.add(trial)
        if trial.rejected is not None:
            cell.tell(trial, judge(self.search, None, f"rejected: {trial.rejected}"))
            return
        assert trial.run_id is not None and trial.config_hash is not None
        self.run_of.setdefault(trial.config_hash, trial.run_id)
        if self._ended(trial.run_id):
            cell.tell(trial, self._judgement(trial.run_id))
        else:
            self.waiting.setdefault(trial.run_id, []).append((cell.cell.index, trial.number))

    # the scheduler's side --------------------------------------------------------------------
    @property
    def total(self) -> int:
        return max(len(self.runs.runs), self.search.runs_per_cell * len(self.cells))

    def head(self) -> PlannedRun | None:
        while not self.queued and self._open_count() < self.max_open:
            cell = self._asking_cell()
            if cell is None:
                break
            self._ask(cell)
        return super().head()

    @property
    def more(self) -> bool:
        return bool(self.queued) or any(not c.confirmed for c in self.cells)

    def ended(self, run_id: str) -> None:
        if run_id not in self.runs.by_id:
            return
        judgement = self._judgement(run_id)
        for cell_index, trial_number in self.waiting.pop(run_id, []):
            cell = self.cells[cell_index]
            trial = cell.trials[trial_number]
            cell.tell(trial, judgement)
            self._say(cell, trial, judgement)
        for cell in self.cells:
            self._after_tell(cell)

    learns_from_failures = True

    def exit_code(self, failed: list[RunRecord]) -> int:
        """0 when some trial met every constraint, else 1 (failed trials are what it learnt)."""
        return 0 if any(j.feasible for c in self.cells for j in c.told.values()) else 1

    # asking --------------------------------------------------------------------------------------
    def _asking_cell(self) -> CellSearch | None:
        for offset in range(len(self.cells)):
            cell = self.cells[(self.next_cell + offset) % len(self.cells)]
            self._after_tell(cell)
            if cell.stopped is None:
                self.next_cell = (cell.cell.index + 1) % len(self.cells)
                return cell
        return None

    def _ask(self, cell: CellSearch) -> None:
        number = len(cell.trials)
        params, notes = cell.sampler.ask(number)
        made = cell.cell.configure(params, self.runs.inputs_dir)
        base = {"cell": cell.cell.index, "number": number, "params": params, "sampler_attrs": notes}
        earlier = self.run_of.get(made.config_hash or "")
        if made.config_hash is None or earlier is not None:
            cell.repeats += 1
            if made.config_hash is None:
                trial = TrialRecord(**base, rejected=made.rejected)
            else:
                trial = TrialRecord(
                    **base, config_hash=made.config_hash, run_id=earlier, reused=True
                )
            self.manifest.add_trial(trial)
            self._follow(cell, trial)
            if trial.number in cell.told:
                self._say(cell, trial, cell.told[trial.number])
            return
        run = self.runs.add(cell.cell.index, params, len(self.runs.runs), 0)
        assert run is not None
        trial = TrialRecord(
            **base, config_hash=run.config_hash, run_id=run.run_id, run_index=run.run_index
        )
        self.manifest.add_trial(trial)  # first the trial, then its run: a kill between them
        self.manifest.add_runs([pending_record(run)])  # leaves a run the rebuild re-creates
        cell.repeats = 0
        self._follow(cell, trial)
        self.queued.append(run)

    # stopping and confirming -------------------------------------------------------------------
    def _stop_reason(self, cell: CellSearch) -> str | None:
        search = self.search
        if cell.distinct_runs >= search.trials:
            return f"trials: {cell.distinct_runs} distinct configurations run"
        size = search.space_size()
        if size is not None and len(cell.suggested) >= size:
            return f"every one of the space's {size} points was suggested"
        if cell.repeats >= REPEATS_BEFORE_EXHAUSTED:
            return (
                f"exhausted: the sampler's last {cell.repeats} suggestions had run already or "
                "were rejected"
            )
        if search.patience is not None:
            since = cell.without_improvement(search)
            if since >= search.patience:
                return (
                    f"patience: {since} trials without a {search.min_improvement:.0%} improvement"
                )
        if search.max_hours is not None:
            hours = self._busy_hours(cell)
            if hours >= search.max_hours:
                return f"max_hours: its runs took {hours:.2f} h"
        return None

    def _stop(self, cell: CellSearch, reason: str) -> None:
        cell.stopped = reason
        self.manifest.stop_search(cell.cell.index, reason)
        self.display.note(f"search cell {cell.cell.index}: stopped asking ({reason})")

    def _after_tell(self, cell: CellSearch) -> None:
        if cell.stopped is None:
            reason = self._stop_reason(cell)
            if reason is not None:
                self._stop(cell, reason)
        if cell.stopped is not None and not cell.confirmed and not cell.open_runs():
            self._confirm(cell)

    def _confirm(self, cell: CellSearch) -> None:
        """Fresh runs of the cell's best feasible configurations, `cycles` each, interleaved
        (A B C A B C ...): the best single trial is biased by its own noise. Those the record
        holds already are kept (a kill while they were being written leaves only some)."""
        cell.confirmed = True
        chosen = self._best_distinct(cell)
        if not chosen:
            if self.search.confirm.top:
                self.display.note(f"search cell {cell.cell.index}: nothing feasible to confirm")
            return
        record = self.manifest.record.search
        planned = {
            (c.config_hash, c.cycle)
            for c in (record.confirms if record else [])
            if c.cell == cell.cell.index
        }
        cycles = range(1, self.search.confirm.cycles + 1)
        if all((t.config_hash, cycle) in planned for t in chosen for cycle in cycles):
            return
        for cycle in cycles:
            for trial in chosen:
                if (trial.config_hash, cycle) in planned:
                    continue
                run = self.runs.add(cell.cell.index, trial.params, len(self.runs.runs), cycle)
                assert run is not None and trial.config_hash is not None
                self.manifest.add_confirm(
                    ConfirmRecord(
                        cell=cell.cell.index,
                        params=trial.params,
                        config_hash=run.config_hash,
                        run_id=run.run_id,
                        run_index=run.run_index,
                        cycle=cycle,
                    )
                )
                self.manifest.add_runs([pending_record(run)])
                self.queued.append(run)
        self.display.note(
            f"search cell {cell.cell.index}: confirming the best {len(chosen)} configuration(s), "
            f"{self.search.confirm.cycles} fresh runs each"
        )

    def _best_distinct(self, cell: CellSearch) -> list[TrialRecord]:
        """Up to confirm.top feasible configurations, best first (several objectives: members
        of the Pareto front, by the first objective)."""
        goals = self.search.goals
        feasible: dict[str, TrialRecord] = {}
        for trial in cell.trials:
            judgement = cell.told.get(trial.number)
            if judgement is not None and judgement.feasible and trial.config_hash:
                feasible.setdefault(trial.config_hash, trial)
        candidates = list(feasible.values())
        if len(goals) > 1:
            values = {key: cell.told[t.number].values for key, t in feasible.items()}
            candidates = [feasible[key] for key in pareto_front(goals, values)]
        sign = 1.0 if goals[0].direction == "minimize" else -1.0
        candidates.sort(key=lambda t: sign * float(cell.told[t.number].values[0] or 0.0))
        return candidates[: self.search.confirm.top]

    # reading the record --------------------------------------------------------------------------
    def _open_count(self) -> int:
        return sum(1 for run_id in self.runs.by_id if not self._ended(run_id))

    def _ended(self, run_id: str) -> bool:
        record = self.manifest.record.runs.get(run_id)
        return record is not None and record.status in ENDED

    def _judgement(self, run_id: str) -> Judgement:
        if run_id not in self.judged:
            record = self.manifest.record.runs[run_id]
            run = load_run(self.study_dir, self.runs.by_id[run_id], record)
            self.judged[run_id] = judge_run(self.search, run)
        return self.judged[run_id]

    def _busy_hours(self, cell: CellSearch) -> float:
        """Wall time in which at least one of the cell's runs was running, h."""
        spans = []
        now = datetime.datetime.now(datetime.timezone.utc)
        for trial in cell.trials:
            record = self.manifest.record.runs.get(trial.run_id or "")
            if record is None or record.started_at is None or trial.reused:
                continue
            start = _when(record.started_at)
            end = _when(record.finished_at) if record.finished_at else now
            spans.append((start, end))
        total, reach = 0.0, None
        for start, end in sorted(spans):
            if reach is not None and start < reach:
                start = reach
            if end > start:
                total += (end - start).total_seconds()
                reach = end if reach is None else max(reach, end)
        return total / 3600

    def _say(self, cell: CellSearch, trial: TrialRecord, judgement: Judgement) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        if judgement.feasible:
            values = ", ".join(
                f"{goal.metric}={number(value)}"
                for goal, value in zip(self.search.goals, judgement.values, strict=True)
            )
            verdict = f"feasible: {values}"
        else:
            verdict = f"infeasible: {judgement.reason}"
        self.display.note(f"  trial {cell.cell.index}.{trial.number} ({shown}): {verdict}")


def _when(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
