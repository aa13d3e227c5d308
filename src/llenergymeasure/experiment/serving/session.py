"""One serving experiment: tokenise -> server start (timed, metered) -> idle baseline with the
server loaded -> open-loop load -> steady state -> figures, Parquet files, the result.

Energy over the steady state comes from the NVML total-energy counter, read by the sampler
every 0.1 s and interpolated at the window's edges (the window is chosen after the run, so no
counter read can sit exactly on them); per time slice likewise. The RAPL counters (CPU package,
DRAM) are sampled the same way during the load and interpolated at the same edges.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import urllib.request
from dataclasses import dataclass

from llenergymeasure.backends.base import MemoryStats
from llenergymeasure.backends.shape import shape_from_config
from llenergymeasure.contract.result import (
    Energy,
    Latency,
    QualityWarning,
    ServingFigures,
)
from llenergymeasure.contract.serving import ServingConfig
from llenergymeasure.contract.workdir import ProgressEvent, WorkPaths
from llenergymeasure.energy.meter import WindowEnergy
from llenergymeasure.energy.rapl import RaplSampler
from llenergymeasure.energy.sampler import Row
from llenergymeasure.experiment.measured import Measured, WarmupOutcome
from llenergymeasure.experiment.metrics import summarise
from llenergymeasure.experiment.serving import figures
from llenergymeasure.experiment.serving.loadgen import LoadGenerator
from llenergymeasure.experiment.serving.records import RequestRecord, write_requests
from llenergymeasure.experiment.serving.servers import Server, ServerFailed
from llenergymeasure.experiment.serving.window import (
    SteadyState,
    requests_for_more_steady_s,
    steady_state,
)
from llenergymeasure.experiment.serving.workload import Workload
from llenergymeasure.experiment.session import Session

PROGRESS_EVERY_S = 2.0
RAPL_INTERVAL_S = 0.1
# The server's own gauges kept over time (vLLM's Prometheus names; older releases said gpu_).
SERVER_GAUGES = re.compile(
    r"^vllm:(num_requests_running|num_requests_waiting|kv_cache_usage_perc|gpu_cache_usage_perc)"
    r"(\{[^}]*\})?\s+([0-9.eE+-]+)$"
)
LATENCY_METHOD = (
    "client timestamps (perf_counter) of the streamed response chunks on loopback (chat: the "
    "chunks carrying content): TTFT = "
    "first chunk - send, ITL = gaps between chunks, request = last chunk - send; over the "
    "measured requests sent inside the steady state"
)
STEADY_RULE = (
    "from when requests in flight (averaged over the last {smooth:g} s), after the warm-up, "
    "first reach {fraction} x their mean level over the second half of sending, until the "
    "last send (the drain); all sent at once: until in flight falls below {fraction} x peak"
)


class MetricsScraper:
    """The server's /metrics every `interval_s` on a thread: its queue and KV-cache gauges."""

    def __init__(self, url: str, interval_s: float, clock_zero: float) -> None:
        self.url, self.interval_s, self.zero = url, interval_s, clock_zero
        self.rows: list[tuple[float, str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llem-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scrape()
            self._stop.wait(self.interval_s)

    def scrape(self) -> None:
        t = time.perf_counter() - self.zero
        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
                text = answer.read().decode("utf-8", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            match = SERVER_GAUGES.match(line.strip())
            if match:
                self.rows.append((t, match.group(1), float(match.group(3))))


NO_BUILD = "serving starts the backend's server; nothing is compiled apart"
SERVER_MEMORY = "held by the server process, not the experiment process"


@dataclass
class _Load:
    """What the load left for the figures: the records, their clock zero, the steady state."""

    records: list[RequestRecord]
    zero: float
    window: SteadyState
    share: figures.Attribution
    good: figures.Goodput
    metrics_file: str | None


class ServingSession(Session):
    """The backend's server on loopback under an open-loop load; the window is the steady
    state, chosen after the load by a stated rule."""

    ready_s = 0.0  # until the server answered
    loaded: _Load | None = None  # until the load was sent
    workload: Workload  # set by `load`
    records: list[RequestRecord]  # every request, before and after it is sent

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
        self.records = self.workload.records()
        self.server.start(self.workload.longest_tokens(self.records))
        self.ready_s = self.server.wait_ready(
            self.serving.readiness_timeout_s, self.workload.probe()
        )
        return f"server ready in {self.ready_s:.1f} s"

    def measure(self, prompts: list[list[int]]) -> Measured:
        records = self.records
        try:
            zero, scraper = self._load(records)
        finally:
            self.server.stop()
        serving = self.serving
        slo_met = [figures.meets_slo(r, serving.slo) for r in records]
        write_requests(records, self.workdir / WorkPaths.REQUESTS, slo_met)
        window = steady_state(records, serving.steady_fraction, serving.slice_s)
        if window is None:
            raise RuntimeError(
                "no steady state: no measured request was in flight long enough (all failed, "
                "or every request is warm-up); see requests.parquet"
            )
        good = figures.goodput(records, window, serving.slo)
        if good.completed_in_window == 0:
            raise RuntimeError(
                f"no measured request completed inside the steady state "
                f"({window.start_s:.2f}-{window.end_s:.2f} s); see requests.parquet"
            )
        rows = self.instruments.rows()
        self._write_slices(records, zero, rows)
        self.loaded = _Load(
            records,
            zero,
            window,
            figures.attribution(records, window, serving.slo),
            good,
            self._write_server_metrics(scraper),
        )
        start, end = zero + window.start_s, zero + window.end_s
        completed = figures.measured_in(records, window, "end_s")
        # latency: requests sent inside the steady state (all measured ones if none was)
        in_window = figures.measured_in(records, window, "sent_s") or [
            r for r in records if not r.warmup and r.ok
        ]
        return Measured(
            window=self._window_energy(start, end, rows),
            window_rows=[r for r in rows if start <= r.t_s <= end],
            warmup=WarmupOutcome(window.start_s, 0, None, None),
            requests=[(r.input_tokens, r.output_tokens or 0) for r in completed],
            output_tokens=self.loaded.share.tokens,
            passes=1,
            batches=len(completed),
            latency=_latency(in_window),
            memory=MemoryStats(None, None, SERVER_MEMORY),
            shape=shape_from_config(self.config, offline=self.offline),
            gpu_process_counts=self.instruments.gpu_process_counts(),
            engine_arguments=self.server.arguments,
        )

    def close(self) -> None:
        self.server.stop()

    def _load(self, records: list[RequestRecord]) -> tuple[float, MetricsScraper]:
        """Send the load; returns the clock zero of the records' times and the scraper."""
        server = self.server
        generator = LoadGenerator(server.url, self.workload, records, server.alive)
        self.instruments.set_phase("serving")
        zero = time.perf_counter()
        scraper = MetricsScraper(server.url, self.serving.slice_s, zero)
        scraper.start()
        self.rapl.start()
        done = threading.Event()
        progress = threading.Thread(target=self._progress, args=(records, done), daemon=True)
        progress.start()
        try:
            generator.run(zero)
        finally:
            done.set()
            scraper.stop()
            self.rapl.stop()
            self.instruments.set_phase("idle")
        self.emit(ProgressEvent(event="warmup_done", detail="load sent"))
        if not server.alive():
            code = server.process.returncode if server.process else None
            write_requests(records, self.workdir / WorkPaths.REQUESTS, [None] * len(records))
            raise ServerFailed(
                f"the {server.name} server died during the load (exit code {code}); the "
                f"per-request records so far are in {WorkPaths.REQUESTS}; its log ends:\n"
                f"{server.log_tail()}"
            )
        return zero, scraper

    def _progress(self, records: list[RequestRecord], done: threading.Event) -> None:
        """A `batch` event every few seconds (requests ended / all): the host's stall check."""
        while not done.wait(PROGRESS_EVERY_S):
            ended = sum(1 for r in records if r.end_s is not None or r.error is not None)
            self.emit(ProgressEvent(event="batch", i=ended, n=len(records), detail="requests"))

    # figures ----------------------------------------------------------------------------------
    def _window_energy(self, start: float, end: float, rows: list[Row]) -> WindowEnergy:
        """The steady state's GPU energy, by the one source rule (`energy.between`), and its
        CPU energy from the sampled RAPL counters."""
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
        )

    def mode_figures(self, measured: Measured, energy: Energy) -> ServingFigures | None:
        loaded = self.loaded
        assert loaded is not None
        return self._serving_figures(loaded, energy)

    def _serving_figures(self, loaded: _Load, e: Energy) -> ServingFigures:
        serving = self.serving
        records, window, share, good = loaded.records, loaded.window, loaded.share, loaded.good
        measured = [r for r in records if not r.warmup]
        sent = [r for r in measured if r.sent_s is not None]
        lags = [r.send_lag_s * 1000 for r in sent if r.send_lag_s is not None]
        tpots = [r.tpot_s * 1000 for r in measured if r.ok and r.tpot_s is not None]
        gpu_j = e.gpu_j
        adjusted = e.gpu_adjusted_j
        why = e.gpu_j_reason or "GPU energy was not measured"
        per_token, _ = figures.per(gpu_j, share.tokens, why)
        per_slo_token, per_slo_token_why = figures.per(gpu_j, share.slo_tokens, why)
        j_req = j_req_why = j_slo = j_slo_why = adj_req = adj_req_why = None
        if per_token is None:
            j_req_why = j_slo_why = adj_req_why = why
        else:
            j_req = per_token * (share.mean_tokens or 0.0)
            if per_slo_token is not None and share.mean_slo_tokens:
                j_slo = per_slo_token * share.mean_slo_tokens
            else:
                j_slo_why = per_slo_token_why or "no request met every SLO"
            adj_token, adj_token_why = figures.per(
                adjusted, share.tokens, e.gpu_adjusted_j_reason or why
            )
            if adj_token is not None:
                adj_req = adj_token * (share.mean_tokens or 0.0)
            else:
                adj_req_why = adj_token_why
        no_slo = (
            "no SLO was given: every completed request counts" if not serving.slo.given else None
        )
        return ServingFigures(
            target_request_rate=None if serving.request_rate == "inf" else serving.rate,
            target_request_rate_reason="request_rate 'inf': every request sent at once"
            if serving.request_rate == "inf"
            else None,
            achieved_request_rate=figures.achieved_rate(records),
            send_lag_ms=summarise(lags) if lags else None,
            send_lag_ms_reason=None if lags else "no request was sent",
            requests_sent=len(sent),
            requests_completed=sum(1 for r in measured if r.ok),
            requests_failed=sum(1 for r in measured if not r.ok),
            warmup_requests=len(records) - len(measured),
            steady_start_s=window.start_s,
            steady_end_s=window.end_s,
            steady_rule=STEADY_RULE.format(
                fraction=serving.steady_fraction, smooth=serving.slice_s
            ),
            peak_in_flight=window.peak_in_flight,
            steady_level_in_flight=window.level,
            load_duration_s=max((r.end_s or 0.0) for r in records),
            tpot_ms=summarise(tpots) if tpots else None,
            tpot_ms_reason=None if tpots else "no completed request had two or more tokens",
            slo=serving.slo.given,
            goodput_requests_per_s=good.requests_per_s,
            goodput_requests_per_s_reason=None,
            goodput_fraction=good.fraction,
            goodput_fraction_reason=None if good.fraction is not None else "no request completed",
            j_per_request=j_req,
            j_per_request_reason=j_req_why,
            j_per_slo_request=j_slo,
            j_per_slo_request_reason=j_slo_why,
            j_per_slo_output_token=per_slo_token,
            j_per_slo_output_token_reason=per_slo_token_why if per_slo_token is None else None,
            adjusted_j_per_request=adj_req,
            adjusted_j_per_request_reason=adj_req_why,
            attribution=figures.ATTRIBUTION + (f"; {no_slo}" if no_slo else ""),
            server=self.server.description,
            server_ready_s=self.ready_s,
            slices_file=WorkPaths.SLICES,
            requests_file=WorkPaths.REQUESTS,
            server_metrics_file=loaded.metrics_file,
            server_metrics_file_reason=None
            if loaded.metrics_file
            else "the server exposed none of its queue or KV-cache gauges at /metrics",
        )

    def mode_warnings(self, measured: Measured) -> list[QualityWarning]:
        serving, loaded = self.serving, self.loaded
        assert loaded is not None
        records, window = loaded.records, loaded.window
        kept: list[QualityWarning] = []
        if not window.reached:
            kept.append(
                QualityWarning(
                    code="steady_state_not_reached",
                    message="requests in flight kept rising until the last send: the server "
                    "fell behind the arrivals (overload), so there is no steady state; the "
                    "figures cover the whole sending period after the warm-up",
                )
            )
        elif window.duration_s < serving.min_steady_s:
            rate = figures.achieved_rate(records)
            more = requests_for_more_steady_s(serving.min_steady_s - window.duration_s, rate)
            kept.append(
                QualityWarning(
                    code="steady_state_short",
                    message=f"steady state {window.duration_s:.1f} s < min_steady_s "
                    f"{serving.min_steady_s:g} s: about {more} more requests at the achieved "
                    f"{rate:.2f} req/s would fix it",
                )
            )
        lags = sorted(r.send_lag_s for r in records if r.send_lag_s is not None)
        if lags and lags[int(0.99 * (len(lags) - 1))] > serving.max_send_lag_s:
            p99 = lags[int(0.99 * (len(lags) - 1))]
            kept.append(
                QualityWarning(
                    code="send_lag",
                    message=f"the generator sent late (p99 lag {p99 * 1000:.1f} ms > "
                    f"{serving.max_send_lag_s * 1000:g} ms): the host could not generate the "
                    "target rate; the achieved rate is the one to read",
                )
            )
        failed = sum(1 for r in records if not r.warmup and not r.ok)
        if failed:
            kept.append(
                QualityWarning(
                    code="requests_failed",
                    message=f"{failed} measured request(s) failed; see {WorkPaths.REQUESTS}",
                )
            )
        return kept

    # files ------------------------------------------------------------------------------------
    def _write_slices(self, records: list[RequestRecord], zero: float, rows: list[Row]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        end = max([r.end_s or 0.0 for r in records] + [0.0])
        cuts = figures.slices(end, self.serving.slice_s)
        meter = self.instruments.meter
        energies = [meter.gpu_energy(zero + a, zero + b, rows=rows).per_gpu_j for a, b in cuts]
        cpu = [self.rapl.energy_between(zero + a, zero + b) for a, b in cuts]
        table = pa.table(
            {
                "start_s": pa.array([a for a, _ in cuts], pa.float64()),
                "end_s": pa.array([b for _, b in cuts], pa.float64()),
                "gpu_j": pa.array([sum(e) if e else None for e in energies], pa.float64()),
                "cpu_package_j": pa.array([package for package, _ in cpu], pa.float64()),
                "dram_j": pa.array([dram for _, dram in cpu], pa.float64()),
                "output_tokens": pa.array(
                    [sum(figures.tokens_in(r, a, b) for r in records) for a, b in cuts],
                    pa.float64(),
                ),
                "requests_sent": pa.array(
                    [
                        sum(1 for r in records if r.sent_s is not None and a <= r.sent_s < b)
                        for a, b in cuts
                    ],
                    pa.int32(),
                ),
            }
        )
        pq.write_table(table, self.workdir / WorkPaths.SLICES)

    def _write_server_metrics(self, scraper: MetricsScraper) -> str | None:
        if not scraper.rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "t_s": pa.array([t for t, _, _ in scraper.rows], pa.float64()),
                "metric": pa.array([m for _, m, _ in scraper.rows], pa.string()),
                "value": pa.array([v for _, _, v in scraper.rows], pa.float64()),
            }
        )
        pq.write_table(table, self.workdir / WorkPaths.SERVER_METRICS)
        return WorkPaths.SERVER_METRICS


def _latency(records: list[RequestRecord]) -> Latency:
    e2e = [r.e2e_s * 1000 for r in records if r.e2e_s is not None]
    ttft = [r.ttft_s * 1000 for r in records if r.ttft_s is not None]
    itl = [gap * 1000 for r in records for gap in r.itls_s]
    return Latency(
        request_ms=summarise(e2e),
        ttft_ms=summarise(ttft) if ttft else None,
        ttft_ms_reason=None if ttft else "no request streamed a token",
        itl_ms=summarise(itl) if itl else None,
        itl_ms_reason=None if itl else "no request streamed two or more chunks",
        method=LATENCY_METHOD,
    )
