"""The search as the scheduler's run source.

When a slot is free and fewer than `execution.max_parallel` of the search's runs are open, the
next asking cell (round robin) asks its sampler: a suggestion the contract rejects is told as
infeasible at once (no container); one whose configuration already ran (or is running) reuses
that run's result; anything else is a new run, recorded in the manifest (trial line, then run
record) before it starts. As each run ends its judgement is told to every trial it measures.
A cell stops asking at `trials` distinct configurations, at `max_hours` of its runs' wall time,
when its sampler only repeats itself, or by the stop for want of improvement (`stopping.py`,
which has its incumbent re-measured first); once its runs have ended, its best configurations
race on fresh runs (`results.racing`), one round at a time, each round a manifest line.

The manifest is the only record: everything here is rebuilt from it on `--resume`. A resume
with another budget (`SearchBudget`: trials, patience, max_hours, confirm.max_runs) records the
change, then asks the stop rule again of every stopped cell under the new budget: a cell whose
stop it no longer justifies is reopened (it asks on from its record, then races again, its race
numbered 1, 2...); a smaller budget stops a cell at its next look.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from llenergymeasure.config.search import SearchBudget
from llenergymeasure.contract.pruning import LatencyBound, TrialPruned
from llenergymeasure.contract.workdir import parse_utc, utc_now
from llenergymeasure.orchestrator.display import Display
from llenergymeasure.orchestrator.schedule.search import stopping
from llenergymeasure.orchestrator.schedule.search.posterior import CHANCE_KEY
from llenergymeasure.orchestrator.schedule.search.sampler import CellSampler
from llenergymeasure.orchestrator.schedule.search.slices import SliceWatch
from llenergymeasure.orchestrator.schedule.search.stopping import Told
from llenergymeasure.orchestrator.schedule.sources import RunSource
from llenergymeasure.orchestrator.schedule.study_folder import pending_record
from llenergymeasure.results.cells import number
from llenergymeasure.results.load import load_run
from llenergymeasure.results.racing import Candidate
from llenergymeasure.results.search import (
    Judgement,
    candidate_of,
    judge,
    judge_run,
    pareto_front,
    race_decision,
)
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import (
    BudgetRecord,
    ConfirmRecord,
    RaceRecord,
    RunRecord,
    SearchRecord,
    SliceRecord,
    TrialRecord,
    WarmRecord,
)
from llenergymeasure.study.models import PlannedRun, SearchPlan
from llenergymeasure.study.sampler_choice import sampler_note
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
    suggested: set[str] = field(default_factory=set)  # distinct suggestions, as text
    race: Race | None = None  # its confirmation, once its search has stopped and its runs ended
    race_number: int = 0  # which of its races: a budget change that reopens it races again
    remeasures: dict[str, list[str]] = field(default_factory=dict)  # config hash -> run ids

    def add(self, trial: TrialRecord) -> None:
        self.trials.append(trial)
        self.suggested.add(repr(sorted(trial.params.items())))

    @property
    def distinct_runs(self) -> int:
        return sum(1 for t in self.trials if t.run_id is not None and not t.reused)

    def tell(
        self, trial: TrialRecord, judgement: Judgement, slices: SliceRecord | None = None
    ) -> None:
        self.sampler.tell(trial.number, trial.params, trial.sampler_attrs, judgement, slices)
        self.told[trial.number] = judgement

    def open_runs(self) -> set[str]:
        return {t.run_id for t in self.trials if t.run_id and t.number not in self.told}

    def chance_better(self) -> float | None:
        """The model's chance, at the latest ask that gave one, that an untried configuration
        beats the incumbent (`posterior.py`); None: no ask gave one."""
        for trial in reversed(self.trials):
            chance = (trial.sampler_attrs or {}).get(CHANCE_KEY)
            if isinstance(chance, int | float):
                return float(chance)
        return None

    def told_in_order(self) -> list[Told]:
        """The told trials, in trial order up to the first not yet told."""
        told = []
        for trial in self.trials:
            judgement = self.told.get(trial.number)
            if judgement is None:
                break
            value = judgement.values[0] if judgement.feasible else None
            told.append(Told(trial.config_hash, value))
        return told

    @property
    def done(self) -> bool:
        """Its search stopped and its race (if any) ended."""
        return self.race is not None and self.race.ended is not None


@dataclass
class Race:
    """A cell's race (`results.racing`): its candidates by config hash, best search value
    first, their fresh runs by round, and the rounds decided so far (manifest `race` lines)."""

    candidates: dict[str, dict[str, object]]  # config hash -> params
    runs: dict[str, list[str]] = field(default_factory=dict)  # config hash -> run ids
    round_of: dict[str, int] = field(default_factory=dict)  # run id -> its round
    rounds: list[RaceRecord] = field(default_factory=list)

    @property
    def ended(self) -> str | None:
        return self.rounds[-1].ended if self.rounds else None

    @property
    def decided(self) -> int:
        """The last round decided (0: none yet)."""
        return self.rounds[-1].round if self.rounds else 0

    def run_of(self, key: str, round_: int) -> str | None:
        """The candidate's run in round `round_`, if queued."""
        return next((r for r in self.runs.get(key, []) if self.round_of[r] == round_), None)

    @property
    def eliminated(self) -> dict[str, str]:
        return dict(self.rounds[-1].eliminated) if self.rounds else {}

    def spent(self) -> int:
        return len(self.round_of)


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
        budget: SearchBudget | None = None,
        warm: Callable[[list[Cell]], list[WarmRecord]] | None = None,
    ) -> None:
        """`budget`: the study file's, where it may differ from the one the folder ran under;
        `warm`: the earlier searches' trials to tell its cells (`warm_start.py`), asked for
        only by a search that has asked nothing yet."""
        record = manifest.record.search
        planned = plan.search.budget
        self.budget_before = record.budget(planned) if record is not None else planned
        self.budget = budget or self.budget_before
        self.search = (
            plan.search if self.budget == planned else plan.search.with_budget(self.budget)
        )
        self.manifest, self.study_dir, self.display = manifest, study_dir, display
        self.max_open = max_open
        self.runs = SearchRuns.rebuilt(plan, manifest.record.search, inputs_dir)
        missing = [
            pending_record(r) for r in self.runs.runs if r.run_id not in manifest.record.runs
        ]
        if missing:  # a kill between a trial's line and its run's record
            manifest.add_runs(missing)
        self.slices = SliceWatch(self.search, manifest, study_dir)
        self._record_pruned()
        self.cells = [CellSearch(cell, CellSampler(self.search, cell)) for cell in self.runs.cells]
        self._warm_start(warm)
        note = sampler_note(self.search)
        if note is not None:
            display.note(note)
        self.run_of: dict[str, str] = {}  # config hash -> the run measuring it (cycle 0)
        self.waiting: dict[str, list[tuple[int, int]]] = {}  # run id -> trials (cell, number)
        self.judged: dict[str, Judgement] = {}  # ended run id -> its judgement
        self.next_cell = 0
        super().__init__([r for r in self.runs.runs if not self._ended(r.run_id)])
        self._replay()

    def _warm_start(self, warm: Callable[[list[Cell]], list[WarmRecord]] | None) -> None:
        """Tell each cell's sampler the earlier searches' trials: those recorded, or, before
        the first ask, those `warm` finds (recorded first)."""
        record = self.manifest.record.search
        if warm is not None and (record is None or not (record.trials or record.warm)):
            self.manifest.add_warm(warm(self.runs.cells))
            record = self.manifest.record.search
        if record is None:
            return
        for cell in self.cells:
            told = [w for w in record.warm if w.cell == cell.cell.index]
            cell.sampler.warm(told)

    # the record, replayed --------------------------------------------------------------------
    def _record_pruned(self) -> None:
        """A run its pruner stopped (its slices line says so) that llem did not live to record
        is recorded pruned now: the decision stands, the run is not run again."""
        record = self.manifest.record.search
        for run_id, slices in (record.slices if record is not None else {}).items():
            if slices.pruned is not None and not self._ended(run_id):
                self.manifest.update_run(
                    run_id,
                    status="failed",
                    outcome="failed",
                    error_type=TrialPruned.__name__,
                    error=slices.pruned,
                    finished_at=utc_now(),
                )

    def _replay(self) -> None:
        record = self.manifest.record.search
        if record is not None:
            for trial in record.trials:
                self._follow(self.cells[trial.cell], trial)
            for cell_index, reason in record.stopped.items():
                self.cells[cell_index].stopped = reason
            for confirm in record.confirms:
                if confirm.purpose == "remeasure":
                    remeasured = self.cells[confirm.cell].remeasures
                    remeasured.setdefault(confirm.config_hash, []).append(confirm.run_id)
            for cell in self.cells:
                cell.race_number = record.race_number(cell.cell.index)
                self._replay_race(cell, record)
        if self.budget != self.budget_before:
            self._change_budget()
        for cell in self.cells:
            self._after_tell(cell)
            if cell.race is not None:
                self._race_on(cell)

    def _replay_race(self, cell: CellSearch, record: SearchRecord) -> None:
        """The cell's race as recorded: its candidates (round 0), its runs, its decided rounds
        (replayed as recorded, never decided again)."""
        rounds, raced = record.current_race(cell.cell.index)
        if not rounds:
            return
        params = {c.config_hash: c.params for c in raced}
        for trial in cell.trials:
            if trial.config_hash is not None:
                params.setdefault(trial.config_hash, trial.params)
        race = Race({key: params.get(key, {}) for key in rounds[0].candidates}, rounds=rounds)
        for confirm in raced:
            race.runs.setdefault(confirm.config_hash, []).append(confirm.run_id)
            race.round_of[confirm.run_id] = confirm.round or confirm.cycle
        cell.race = race

    def _change_budget(self) -> None:
        """The study file's budget differs from the one the folder ran under: every stopped
        cell whose stop the new budget does not justify reopens (its race, if any, is
        superseded: its runs already queued still run and are kept), then the change is
        recorded with the cells it reopened."""
        reopened = []
        for cell in self.cells:
            if cell.stopped is None:
                continue
            was, cell.stopped = cell.stopped, None
            if self._stop_reason(cell) is not None:
                cell.stopped = was
                continue
            reopened.append(cell.cell.index)
            cell.race, cell.race_number = None, cell.race_number + 1
        change = BudgetRecord(
            at=utc_now(), budget=self.budget, before=self.budget_before, reopened=reopened
        )
        self.manifest.change_budget(change)
        cells = ", ".join(map(str, reopened))
        self.display.note(
            f"search budget changed ({self.budget.changes_from(self.budget_before)}): "
            + (
                f"cell(s) {cells} reopened: they ask again, then race again"
                if reopened
                else "no stopped cell reopens"
            )
        )

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
            cell.tell(trial, self._judgement(trial.run_id), self.slices.recorded(trial.run_id))
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
        return bool(self.queued) or any(not c.done for c in self.cells)

    def ended(self, run_id: str) -> None:
        if run_id not in self.runs.by_id:
            return
        self.slices.ended(run_id)
        judgement = self._judgement(run_id)
        for cell_index, trial_number in self.waiting.pop(run_id, []):
            cell = self.cells[cell_index]
            trial = cell.trials[trial_number]
            cell.tell(trial, judgement, self.slices.recorded(run_id))
            self._say(cell, trial, judgement)
        for cell in self.cells:
            self._after_tell(cell)
            if cell.race is not None and run_id in cell.race.round_of:
                self._race_on(cell)

    learns_from_failures = True

    def prune_bounds(self, run: PlannedRun) -> list[LatencyBound]:
        """A serving trial's latency constraints (`search.pruner: constraints`); never a
        re-measurement's or a race's (cycle >= 1): those are the measurements that decide."""
        if self.search.pruner == "none" or run.cycle != 0 or run.config.mode != "serving":
            return []
        bounds = (LatencyBound.of(c.metric, c.op, c.bound) for c in self.search.constraints)
        return [bound for bound in bounds if bound is not None]

    def prunes(self, in_flight: list[str]) -> dict[str, str]:
        """The offline trials in flight that the search's pruner stops now, each with why
        (recorded): its new slices told to the trial that asked for its run."""
        stopped = {}
        for run_id in in_flight:
            run = self.runs.by_id.get(run_id)
            trials = self.waiting.get(run_id)
            if run is None or not trials or not self.slices.follows(run):
                continue
            cell_index, number = trials[0]
            sampler = self.cells[cell_index].sampler
            # asked by an earlier llem: its Optuna trial is not live here
            report = partial(sampler.report, number) if number in sampler.live else None
            why = self.slices.look(run_id, report)
            if why is not None:
                stopped[run_id] = why
        return stopped

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
        """Why the cell stops asking now (`stopping.py`), or None: it asks on."""
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
        if search.max_hours is not None:
            hours = self._busy_hours(cell)
            if hours >= search.max_hours:
                return f"max_hours: its runs took {hours:.2f} h"
        if len(search.goals) == 1:
            return self._stagnated(cell)
        return None

    def _stagnated(self, cell: CellSearch) -> str | None:
        """The rule's stop for want of improvement: a floor of feasible trials, a window of
        trials without a `min_improvement` gain in the estimates, and a re-measured
        incumbent (re-measured first where it is not: the stop waits for that run)."""
        search, goal = self.search, self.search.goals[0]
        told = cell.told_in_order()
        feasible = len({t.config_hash for t in told if t.value is not None})
        estimates = self._estimates(cell)
        since = stopping.stagnation(goal, told, estimates, search.min_improvement)
        if feasible < stopping.floor(search) or since < stopping.window(search):
            return None
        chance = cell.chance_better()
        if stopping.model_sees_better(chance):
            return None
        leader = stopping.incumbent(goal, estimates)
        if leader is None:
            return None
        measured = cell.remeasures.get(leader, [])
        if not measured:
            self._remeasure(cell, leader)
            return None
        if not all(self._ended(run_id) for run_id in measured):
            return None
        model = (
            ""
            if chance is None
            else f"; the model gives an untried one a {chance:.1%} chance of beating it"
        )
        return (
            f"no improvement: {since} trials without a {search.min_improvement:.0%} gain over "
            f"its re-measured best ({feasible} feasible configurations run{model})"
        )

    def _estimates(self, cell: CellSearch) -> dict[str, float]:
        """Each feasible configuration's mean over its runs so far (its trial and any
        re-measurement); a configuration with a run that failed the search is left out."""
        values: dict[str, list[float]] = {}
        out: set[str] = set()
        for trial in cell.trials:
            judgement = cell.told.get(trial.number)
            if judgement is None or trial.config_hash is None or trial.reused:
                continue
            if not judgement.feasible or judgement.values[0] is None:
                out.add(trial.config_hash)
                continue
            values.setdefault(trial.config_hash, []).append(judgement.values[0])
        for config_hash, run_ids in cell.remeasures.items():
            for run_id in run_ids:
                if not self._ended(run_id):
                    continue
                judgement = self._judgement(run_id)
                if not judgement.feasible or judgement.values[0] is None:
                    out.add(config_hash)
                else:
                    values.setdefault(config_hash, []).append(judgement.values[0])
        return {key: sum(v) / len(v) for key, v in values.items() if v and key not in out}

    def _remeasure(self, cell: CellSearch, config_hash: str) -> None:
        """One fresh run of the incumbent, before the search trusts it (a manifest line)."""
        params = next(t.params for t in cell.trials if t.config_hash == config_hash)
        run_id = self._fresh_run(cell, config_hash, params, purpose="remeasure")
        cell.remeasures.setdefault(config_hash, []).append(run_id)
        self.display.note(
            f"search cell {cell.cell.index}: re-measuring its best so far ({config_hash[:8]}) "
            "before trusting it"
        )

    def _fresh_run(
        self,
        cell: CellSearch,
        config_hash: str,
        params: dict[str, object],
        *,
        purpose: Literal["race", "remeasure"],
        round_: int | None = None,
    ) -> str:
        """Queue one more run of a configuration that ran (its confirm line first, then its run
        record, as for a trial); its run id."""
        cycle = self._next_cycle(config_hash)
        run = self.runs.add(cell.cell.index, params, len(self.runs.runs), cycle)
        assert run is not None and run.config_hash == config_hash
        self.manifest.add_confirm(
            ConfirmRecord(
                cell=cell.cell.index,
                params=params,
                config_hash=config_hash,
                run_id=run.run_id,
                run_index=run.run_index,
                cycle=cycle,
                purpose=purpose,
                round=round_,
                race=cell.race_number if purpose == "race" else 0,
            )
        )
        self.manifest.add_runs([pending_record(run)])
        self.queued.append(run)
        return run.run_id

    def _stop(self, cell: CellSearch, reason: str) -> None:
        cell.stopped = reason
        self.manifest.stop_search(cell.cell.index, reason)
        self.display.note(f"search cell {cell.cell.index}: stopped asking ({reason})")

    def _after_tell(self, cell: CellSearch) -> None:
        if cell.stopped is None:
            reason = self._stop_reason(cell)
            if reason is not None:
                self._stop(cell, reason)
        if cell.stopped is not None and cell.race is None and not self._open_of(cell):
            self._start_race(cell)

    def _open_of(self, cell: CellSearch) -> bool:
        """Whether a trial or re-measurement run of the cell's search has not ended."""
        remeasuring = any(not self._ended(r) for runs in cell.remeasures.values() for r in runs)
        return bool(cell.open_runs()) or remeasuring

    # the race ----------------------------------------------------------------------------------
    def _start_race(self, cell: CellSearch) -> None:
        """Round 0: the candidates, the cell's best `confirm.top` feasible configurations (a
        manifest line); then the first round of fresh runs."""
        chosen = self._best_distinct(cell) if self.search.confirm.top else []
        race = Race({t.config_hash: t.params for t in chosen if t.config_hash})
        cell.race = race
        keys = list(race.candidates)
        ended = None
        if not keys:
            ended = "nothing feasible to race" if self.search.confirm.top else "confirm.top: 0"
            if self.search.confirm.top:
                self.display.note(f"search cell {cell.cell.index}: nothing feasible to confirm")
        else:
            self.display.note(
                f"search cell {cell.cell.index}: racing its best {len(keys)} configuration(s) "
                f"on fresh runs (margin {self.search.confirm.tolerance:.0%}, at most "
                f"{self.search.confirm.max_runs} runs)"
            )
        record = RaceRecord(
            cell=cell.cell.index,
            round=0,
            candidates=keys,
            next=keys,
            ended=ended,
            race=cell.race_number,
        )
        self._record_round(cell, record)
        self._race_on(cell)

    def _race_on(self, cell: CellSearch) -> None:
        """The race's next step: queue the round its last decision names (or what a kill left
        of it unqueued), or decide it once its runs have all ended, then go on."""
        race = cell.race
        assert race is not None
        while race.ended is None:
            round_ = race.decided + 1
            keys = race.rounds[-1].next
            queued = {key for key in keys if race.run_of(key, round_) is not None}
            missing = [key for key in keys if key not in queued]
            if missing:
                self._queue_round(cell, missing, round_)
                return
            if any(not self._ended(race.run_of(key, round_) or "") for key in keys):
                return
            self._decide_round(cell, round_)

    def _decide_round(self, cell: CellSearch, round_: int) -> None:
        race = cell.race
        assert race is not None
        decision = race_decision(self.search, self._race_candidates(race), race.eliminated)
        runs = {key: len(race.runs.get(key, [])) for key in race.candidates}
        # who runs next: the undecided and the leader, and a leader with a single run (its
        # own interval, and its constraints on a mean, need two)
        following = [*decision.undecided]
        if decision.leader is not None and (following or runs[decision.leader] < 2):
            following.insert(0, decision.leader)
        spent = race.spent()
        ended = None
        if not following:
            ended = "settled" if decision.leader is not None else "no candidate left"
        elif spent + len(following) > self.search.confirm.max_runs:
            ended = f"budget: {spent} of confirm.max_runs {self.search.confirm.max_runs} spent"
        self._record_round(
            cell,
            RaceRecord(
                cell=cell.cell.index,
                round=round_,
                candidates=list(race.candidates),
                leader=decision.leader,
                eliminated=decision.eliminated,
                equivalent=decision.equivalent,
                front=decision.front,
                undecided=decision.undecided,
                runs=spent,
                next=following if ended is None else [],
                ended=ended,
                race=cell.race_number,
            ),
        )

    def _queue_round(self, cell: CellSearch, keys: list[str], round_: int) -> None:
        """One fresh run of each of `keys`, interleaved, in the race's round `round_`."""
        race = cell.race
        assert race is not None
        for key in keys:
            run_id = self._fresh_run(cell, key, race.candidates[key], purpose="race", round_=round_)
            race.runs.setdefault(key, []).append(run_id)
            race.round_of[run_id] = round_

    def _record_round(self, cell: CellSearch, record: RaceRecord) -> None:
        assert cell.race is not None
        cell.race.rounds.append(record)
        self.manifest.add_race(record)
        if record.round > 0:
            self._say_round(cell, record)

    def _race_candidates(self, race: Race) -> list[Candidate]:
        return [
            candidate_of(
                self.search,
                key,
                [self._judgement(r) for r in race.runs.get(key, []) if self._ended(r)],
            )
            for key in race.candidates
        ]

    def _next_cycle(self, config_hash: str) -> int:
        """The configuration's next fresh run (cycle 0 was its trial)."""
        cycles = [r.cycle for r in self.runs.runs if r.config_hash == config_hash]
        return max(cycles, default=0) + 1

    def _say_round(self, cell: CellSearch, record: RaceRecord) -> None:
        parts = [f"leader {record.leader[:8]}" if record.leader else "no leader"]
        if record.eliminated:
            parts.append(f"{len(record.eliminated)} eliminated")
        if record.equivalent:
            parts.append(f"{len(record.equivalent)} within the margin")
        if record.undecided:
            parts.append(f"{len(record.undecided)} undecided")
        end = f"; ended: {record.ended}" if record.ended else ""
        self.display.note(
            f"search cell {cell.cell.index}: race round {record.round} ({record.runs} runs): "
            + ", ".join(parts)
            + end
        )

    def _best_distinct(self, cell: CellSearch) -> list[TrialRecord]:
        """Up to confirm.top feasible configurations, best estimate first (several objectives:
        members of the Pareto front, by the first objective)."""
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
        # ranked by each configuration's estimate: the mean of its runs, re-measurements too
        estimates = self._estimates(cell)
        sign = 1.0 if goals[0].direction == "minimize" else -1.0

        def rank(trial: TrialRecord) -> float:
            value = estimates.get(trial.config_hash or "")
            return sign * float(
                value if value is not None else cell.told[trial.number].values[0] or 0.0
            )

        candidates.sort(key=rank)
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
            start = parse_utc(record.started_at)
            end = parse_utc(record.finished_at) if record.finished_at else now
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
