"""One serving experiment: tokenise -> server start (timed, metered) -> idle baseline with the
server loaded -> open-loop load, as one stage or several against the same server -> each
stage's steady state -> figures, Parquet files, the result.

Energy over a steady state comes from the NVML total-energy counter, read by the sampler
every 0.1 s and interpolated at the window's edges (the window is chosen after the load, so no
counter read can sit exactly on them); per time slice likewise. The RAPL counters (CPU package,
DRAM) are sampled the same way during the load and interpolated at the same edges.

Stages (`serving.stages`, `serving.find_max_rate`) run one after another: the next starts once
the server reports nothing running or waiting. Each has its own warm-up, steady state, energy
and figures (`StageResult`); the result's sections hold the headline stage. A server that dies
in stage k > 0 leaves the earlier stages measured and the run failed with the stage named.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator

from llenergymeasure.backends.base import BackendAdapter, MemoryStats
from llenergymeasure.backends.shape import shape_from_config
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.pruning import TrialPruned
from llenergymeasure.contract.result import (
    FIGURE_SECTIONS,
    Energy,
    ExperimentResult,
    MaxRateFinding,
    QualityWarning,
    ServingFigures,
    StageResult,
)
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.serving import ServingConfig
from llenergymeasure.contract.workdir import ProgressEvent, WorkPaths
from llenergymeasure.energy.meter import WindowEnergy
from llenergymeasure.energy.rapl import RaplSampler
from llenergymeasure.energy.sampler import Row
from llenergymeasure.experiment.instruments import Instruments
from llenergymeasure.experiment.measured import Measured, Phases, WarmupOutcome
from llenergymeasure.experiment.result import assemble
from llenergymeasure.experiment.serving import figures, files
from llenergymeasure.experiment.serving.loadgen import LoadGenerator
from llenergymeasure.experiment.serving.overload import Overload
from llenergymeasure.experiment.serving.pruning import ConstraintPrune
from llenergymeasure.experiment.serving.rate_search import METHOD, RateSearch
from llenergymeasure.experiment.serving.records import RequestRecord
from llenergymeasure.experiment.serving.scraper import MetricsScraper, wait_idle
from llenergymeasure.experiment.serving.servers import Server, ServerFailed
from llenergymeasure.experiment.serving.stage import (
    Server as ServerFacts,
)
from llenergymeasure.experiment.serving.stage import (
    StageRun,
    latency,
    serving_figures,
    stage_warnings,
)
from llenergymeasure.experiment.serving.window import steady_state
from llenergymeasure.experiment.serving.workload import Workload
from llenergymeasure.experiment.session import Session

PROGRESS_EVERY_S = 2.0
RAPL_INTERVAL_S = 0.1
IDLE_TIMEOUT_S = 60.0  # for the server to finish what a stage left before the next one
NO_BUILD = "serving starts the backend's server; nothing is compiled apart"
SERVER_MEMORY = "held by the server process, not the experiment process"
SECTIONS = (*FIGURE_SECTIONS, "warnings")


class ServingSession(Session):
    """The backend's server on loopback under an open-loop load; a stage's window is its
    steady state, chosen after its load by a stated rule."""

    ready_s = 0.0  # until the server answered
    workload: Workload  # set by `load`
    search: RateSearch | None = None  # find_max_rate only
    metrics_file: str | None = None  # once the load is over

    stages: list[StageRun]  # set by `measure`, one appended as each ends
    headline: StageRun | None = None  # the stage the result's sections hold

    @functools.cached_property
    def rapl(self) -> RaplSampler:
        """CPU energy over the load, sampled at the GPU sampler's period."""
        return RaplSampler(self.instruments.rapl, RAPL_INTERVAL_S)

    @property
    def serving(self) -> ServingConfig:
        assert self.config.serving is not None  # mode: serving has its section
        return self.config.serving

    @functools.cached_property
    def server(self) -> Server:
        return Server(self.config, self.workdir, offline=self.offline)

    def build(self) -> tuple[WindowEnergy | None, str | None]:
        return None, NO_BUILD

    def load(self, prompts: list[list[int]]) -> str:
        adapter = self.adapter
        self.workload = Workload(self.config, self.prompt_set, adapter.decode, adapter.encode_chat)
        self.server.start(self._longest_tokens())
        self.ready_s = self.server.wait_ready(
            self.serving.readiness_timeout_s, self.workload.probe()
        )
        return f"server ready in {self.ready_s:.1f} s"

    def _longest_tokens(self) -> int:
        """The longest prompt any stage sends (find_max_rate: as many as its highest rate)."""
        serving = self.serving
        if serving.find_max_rate is not None:
            settings = [serving.at_rate(serving.find_max_rate.high)]
        elif serving.stages is not None:
            settings = [serving.at_stage(stage) for stage in serving.stages]
        else:
            settings = [serving]
        workloads = [self.workload.at(s) for s in settings]
        return max(w.longest_tokens(w.records()) for w in workloads)

    # the load ---------------------------------------------------------------------------------
    def measure(self, prompts: list[list[int]]) -> Measured:
        server = self.server
        self.stages = []
        first_zero = time.perf_counter()
        scraper = MetricsScraper(server.url, self.serving.slice_s, first_zero)
        scraper.start()
        self.rapl.start()
        try:
            for settings in self._stage_settings():
                stage = self._run_stage(len(self.stages), settings, first_zero)
                self.stages.append(stage)
                if stage.outcome == "server_died":
                    break
        finally:
            scraper.stop()
            self.rapl.stop()
            server.stop()
        rows = self.instruments.rows()
        files.write_requests(self.stages, self.workdir / WorkPaths.REQUESTS)
        files.write_slices(self.stages, self.workdir / WorkPaths.SLICES, self._cut_energy(rows))
        self.metrics_file = files.write_server_metrics(
            self.stages, scraper.rows, self.workdir / WorkPaths.SERVER_METRICS
        )
        self.headline = self._headline()
        assert self.headline.measured is not None
        return self.headline.measured

    def _stage_settings(self) -> Iterator[ServingConfig]:
        """Each stage's settings in turn; find_max_rate's next one from the verdicts so far."""
        serving = self.serving
        if serving.find_max_rate is not None:
            bound = serving.find_max_rate.goodput_bound
            self.search = RateSearch(serving.find_max_rate)
            while (rate := self.search.next_rate()) is not None:
                yield serving.at_rate(rate)
                stage = self.stages[-1]
                self.search.tell(rate, stage.met(bound), stage.margin(bound))
        elif serving.stages is not None:
            for stage in serving.stages:
                yield serving.at_stage(stage)
        else:
            yield serving

    def _run_stage(self, index: int, settings: ServingConfig, first_zero: float) -> StageRun:
        server = self.server
        workload = self.workload.at(settings)
        records = workload.records()
        stop_check = self._stop_check(index, settings, records)
        generator = LoadGenerator(
            server.url, workload, records, server.alive, stop_check, settings.slice_s
        )
        self.instruments.set_phase("serving")
        zero = time.perf_counter()
        stage = StageRun(index, settings, records, zero, zero - first_zero)
        done = threading.Event()
        progress = threading.Thread(target=self._progress, args=(stage, done), daemon=True)
        progress.start()
        try:
            generator.run(zero)
        finally:
            done.set()
            self.instruments.set_phase("idle")
        sent = f"stage {index} sent" if self.serving.staged else "load sent"
        self.emit(ProgressEvent(event="warmup_done", detail=sent))
        if not server.alive():
            code = server.process.returncode if server.process else None
            where = f" in stage {index} ({_rate(settings)})" if self.serving.staged else ""
            stage.outcome = "server_died"
            stage.detail = (
                f"the {server.name} server died during the load{where} (exit code {code}); "
                f"the per-request records so far are in {WorkPaths.REQUESTS}; its log "
                f"ends:\n{server.log_tail()}"
            )
            if index == 0:
                files.write_requests([stage], self.workdir / WorkPaths.REQUESTS)
                raise ServerFailed(stage.detail)
            return stage
        if generator.stopped is not None:
            stage.outcome, stage.detail = "stopped_early", generator.stopped
            if isinstance(stop_check, ConstraintPrune):
                files.write_requests([stage], self.workdir / WorkPaths.REQUESTS)
                raise TrialPruned(
                    f"{generator.stopped}; the requests so far are in {WorkPaths.REQUESTS}"
                )
        else:
            self._figures(stage)
        if self.serving.staged:
            wait_idle(server.url, IDLE_TIMEOUT_S)
        return stage

    def _stop_check(
        self, index: int, settings: ServingConfig, records: list[RequestRecord]
    ) -> Overload | ConstraintPrune | None:
        """find_max_rate's early stop (never for its first stage, so the run has figures); a
        search trial's constraint settled against it (a one-stage run only)."""
        search = self.serving.find_max_rate
        if search is not None and search.stop_overloaded and index > 0:
            return Overload(records, settings.slo, search.goodput_bound)
        bounds = self.request.context.prune
        if bounds and not self.serving.staged and search is None:
            return ConstraintPrune(records, bounds)
        return None

    def _figures(self, stage: StageRun) -> None:
        """The stage's steady state, goodput and window energy; `unmeasured` where it has none."""
        serving, records = stage.serving, stage.records
        window = steady_state(records, serving.steady_fraction, serving.slice_s)
        if window is None:
            stage.outcome = "unmeasured"
            stage.detail = (
                "no steady state: no measured request was in flight long enough (all failed, "
                "or every request is warm-up); see requests.parquet"
            )
            return
        good = figures.goodput(records, window, serving.slo)
        if good.completed_in_window == 0:
            stage.outcome = "unmeasured"
            stage.detail = (
                f"no measured request completed inside the steady state "
                f"({window.start_s:.2f}-{window.end_s:.2f} s); see requests.parquet"
            )
            return
        stage.window, stage.good = window, good
        stage.share = figures.attribution(records, window, serving.slo)
        rows = self.instruments.rows()
        start, end = stage.zero + window.start_s, stage.zero + window.end_s
        completed = figures.measured_in(records, window, "end_s")
        # latency: requests sent inside the steady state (all measured ones if none was)
        in_window = figures.measured_in(records, window, "sent_s") or [
            r for r in records if not r.warmup and r.ok
        ]
        stage.measured = Measured(
            window=self._window_energy(start, end, rows),
            window_rows=[r for r in rows if start <= r.t_s <= end],
            warmup=WarmupOutcome(window.start_s, 0, None, None),
            requests=[(r.input_tokens, r.output_tokens or 0) for r in completed],
            output_tokens=stage.share.tokens,
            passes=1,
            batches=len(completed),
            latency=latency(in_window),
            memory=MemoryStats(None, None, SERVER_MEMORY),
            shape=shape_from_config(self.config, offline=self.offline),
            gpu_process_counts=self.instruments.gpu_process_counts(),
            engine_arguments=self.server.arguments,
        )

    def _headline(self) -> StageRun:
        """find_max_rate: the highest rate that met the SLOs, else its first measured stage; a
        stage list: its last measured stage. No measured stage: the first one's failure."""
        measured = [stage for stage in self.stages if stage.measured is not None]
        if not measured:
            raise RuntimeError(self.stages[0].detail or "no stage was measured")
        if self.search is not None:
            return self._best_stage() or measured[0]
        return measured[-1]

    def _best_stage(self) -> StageRun | None:
        """find_max_rate's stage at the highest rate that met the SLOs, if one did."""
        spec, best = self.serving.find_max_rate, self.search and self.search.best
        if spec is None or not best:
            return None
        bound = spec.goodput_bound
        return next(s for s in self.stages if s.met(bound) and s.serving.rate == best.rate)

    def _progress(self, stage: StageRun, done: threading.Event) -> None:
        """A `batch` event every few seconds (requests ended / all): the host's stall check."""
        records = stage.records
        what = f"requests of stage {stage.index}" if self.serving.staged else "requests"
        while not done.wait(PROGRESS_EVERY_S):
            ended = sum(1 for r in records if r.end_s is not None or r.error is not None)
            self.emit(ProgressEvent(event="batch", i=ended, n=len(records), detail=what))

    def close(self) -> None:
        self.server.stop()

    # energy -----------------------------------------------------------------------------------
    def _window_energy(self, start: float, end: float, rows: list[Row]) -> WindowEnergy:
        """A window's GPU energy, by the one source rule (`energy.between`), and its CPU energy
        from the sampled RAPL counters."""
        gpu = self.instruments.meter.gpu_energy(start, end, rows=rows)
        package_j, dram_j = self.rapl.energy_between(start, end)
        package_why, dram_why = self.rapl.reasons(package_j, dram_j)
        return WindowEnergy(
            name="window",
            start_s=start,
            end_s=end,
            gpu_source=gpu.source,
            per_gpu_j=gpu.per_gpu_j,
            gpu_reason=gpu.reason,
            cpu_package_j=package_j,
            cpu_package_reason=package_why,
            dram_j=dram_j,
            dram_reason=dram_why,
            counter_reset=gpu.counter_reset,
        )

    def _cut_energy(self, rows: list[Row]) -> files.CutEnergy:
        """(GPU J, CPU package J, DRAM J) between two perf_counter times."""
        meter = self.instruments.meter

        def cut(start: float, end: float) -> tuple[float | None, float | None, float | None]:
            per_gpu = meter.gpu_energy(start, end, rows=rows).per_gpu_j
            package, dram = self.rapl.energy_between(start, end)
            return (sum(per_gpu) if per_gpu else None, package, dram)

        return cut

    # the result -------------------------------------------------------------------------------
    @property
    def _server_facts(self) -> ServerFacts:
        return ServerFacts(self.server.description, self.ready_s, self.metrics_file)

    def mode_figures(self, measured: Measured, energy: Energy) -> ServingFigures | None:
        assert self.headline is not None
        return serving_figures(self.headline, energy, self._server_facts)

    def mode_warnings(self, measured: Measured) -> list[QualityWarning]:
        assert self.headline is not None
        return stage_warnings(self.headline)

    def staged(
        self, result: ExperimentResult, phases: Phases, timeseries_written: bool
    ) -> ExperimentResult:
        """The headline's result with every stage's own figures and find_max_rate's finding."""
        if not self.serving.staged:
            return result
        stages = [self._stage_result(stage, phases, timeseries_written) for stage in self.stages]
        assert self.headline is not None
        return result.model_copy(
            update={
                "stages": stages,
                "headline_stage": self.headline.index,
                "max_rate": self._finding(),
            }
        )

    def _stage_result(self, stage: StageRun, phases: Phases, written: bool) -> StageResult:
        serving = stage.serving
        search = self.serving.find_max_rate
        sections = {}
        if stage.measured is not None:
            view = _StageView(self, stage, self._server_facts)
            assembled = assemble(view, phases, stage.measured, written)
            sections = {name: getattr(assembled, name) for name in SECTIONS}
        return StageResult(
            index=stage.index,
            request_rate=None if serving.request_rate == "inf" else serving.rate,
            max_concurrency=serving.max_concurrency,
            n_requests=serving.n_requests,
            duration_s=serving.duration_s,
            outcome=stage.outcome,
            detail=stage.detail,
            met_slo=stage.met(search.goodput_bound) if search is not None else None,
            began_s=stage.began_s,
            **sections,
        )

    def _finding(self) -> MaxRateFinding | None:
        search, spec = self.search, self.serving.find_max_rate
        if search is None or spec is None:
            return None
        best, failed, stage = search.best, search.first_failed, self._best_stage()
        return MaxRateFinding(
            max_rate=best.rate if best is not None else None,
            max_rate_reason=None if best is not None else search.done_reason,
            stage=stage.index if stage is not None else None,
            first_failed_rate=failed.rate if failed is not None else None,
            goodput_bound=spec.goodput_bound,
            tolerance=spec.tolerance,
            probes=len(search.verdicts),
            method=f"{METHOD}; stopped: {search.done_reason}",
        )


class _StageView:
    """One stage as the result assembler reads a session: the session's, with the stage's own
    serving figures and warnings."""

    def __init__(self, session: ServingSession, stage: StageRun, server: ServerFacts) -> None:
        self.request: RunRequest = session.request
        self.config: ExperimentConfig = session.config
        self.adapter: BackendAdapter = session.adapter
        self.instruments: Instruments = session.instruments
        self.started_at, self.t0 = session.started_at, session.t0
        self.stage, self.server = stage, server

    def mode_figures(self, measured: Measured, energy: Energy) -> ServingFigures | None:
        return serving_figures(self.stage, energy, self.server)

    def mode_warnings(self, measured: Measured) -> list[QualityWarning]:
        return stage_warnings(self.stage)


def _rate(settings: ServingConfig) -> str:
    return "rate inf" if settings.request_rate == "inf" else f"{settings.rate:g} req/s"
