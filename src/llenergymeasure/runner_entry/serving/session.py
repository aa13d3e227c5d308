"""One serving experiment: tokenise -> server start (timed, metered) -> idle baseline with the
server loaded -> open-loop load -> steady state -> figures, Parquet files, the result.

Energy over the steady state comes from the NVML total-energy counter, read by the sampler
every 0.1 s and interpolated at the window's edges (the window is chosen after the run, so no
counter read can sit exactly on them); per time slice likewise. RAPL is read only at window
edges fixed in advance, so serving leaves the CPU figures null with that reason.
"""

from __future__ import annotations

import importlib
import re
import resource
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from llenergymeasure.backends.base import MemoryStats
from llenergymeasure.backends.registry import get_backend
from llenergymeasure.backends.shape import shape_from_config
from llenergymeasure.contract.backends import spec_of
from llenergymeasure.contract.result import (
    Energy,
    ExperimentResult,
    Latency,
    Memory,
    QualityWarning,
    ServingFigures,
    Throughput,
    Timings,
    TokenCounts,
)
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.contract.workdir import ProgressEvent, utc_now
from llenergymeasure.energy.arithmetic import counter_window_j, window_energy_j
from llenergymeasure.energy.meter import WindowEnergy
from llenergymeasure.energy.sampler import Row
from llenergymeasure.runner_entry.environment import environment
from llenergymeasure.runner_entry.metrics import flops, summarise
from llenergymeasure.runner_entry.prompts import tokenised_prompts
from llenergymeasure.runner_entry.protocol import Emit, Instruments, Recording
from llenergymeasure.runner_entry.result_builder import energy, peak_sum, telemetry, warnings
from llenergymeasure.runner_entry.serving import figures
from llenergymeasure.runner_entry.serving.arrivals import planned_count, send_times
from llenergymeasure.runner_entry.serving.loadgen import LoadGenerator
from llenergymeasure.runner_entry.serving.records import (
    REQUESTS_FILE,
    RequestRecord,
    write_requests,
)
from llenergymeasure.runner_entry.serving.servers import Server, ServerFailed
from llenergymeasure.runner_entry.serving.window import (
    SteadyState,
    requests_for_more_steady_s,
    steady_state,
)

SLICES_FILE = "slices.parquet"
SERVER_METRICS_FILE = "server_metrics.parquet"
PROGRESS_EVERY_S = 2.0
# The server's own gauges kept over time (vLLM's Prometheus names; older releases said gpu_).
SERVER_GAUGES = re.compile(
    r"^vllm:(num_requests_running|num_requests_waiting|kv_cache_usage_perc|gpu_cache_usage_perc)"
    r"(\{[^}]*\})?\s+([0-9.eE+-]+)$"
)
LATENCY_METHOD = (
    "client timestamps (perf_counter) of the streamed /v1/completions chunks on loopback: TTFT = "
    "first chunk - send, ITL = gaps between chunks, request = last chunk - send; over the "
    "measured requests sent inside the steady state"
)
STEADY_RULE = (
    "from when requests in flight (averaged over the last {smooth:g} s), after the warm-up, "
    "first reach {fraction} x their mean level over the second half of sending, until the "
    "last send (the drain); all sent at once: until in flight falls below {fraction} x peak"
)
CPU_REASON = (
    "RAPL is read at window edges fixed in advance; a serving window is chosen after the run"
)


def server_for(request: RunRequest, workdir: Path) -> Server:
    module, _, name = (spec_of(request.config.backend).server or "").partition(":")
    server_cls = getattr(importlib.import_module(module), name)
    return server_cls(request.config, workdir, offline=request.context.offline)  # type: ignore[no-any-return]


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


@dataclass(frozen=True)
class Startup:
    """What came before the load: the server's start (metered), the idle baseline with it
    loaded, and the tokenisation."""

    load: WindowEnergy
    baseline: WindowEnergy | None
    tokenisation_s: float
    ready_s: float


class ServingSession:
    def __init__(self, request: RunRequest, workdir: Path, emit: Emit, t0: float) -> None:
        assert request.config.serving is not None
        self.request, self.workdir, self.emit, self.t0 = request, workdir, emit, t0
        self.config = request.config
        self.serving = request.config.serving
        self.started_at = utc_now()
        self.adapter = get_backend(request.config.backend)  # its tokenizer and environment

    # the run ------------------------------------------------------------------------------------
    def run(self, instruments: Instruments) -> ExperimentResult:
        config, serving, offline = self.config, self.serving, self.request.context.offline
        start = time.perf_counter()
        self.adapter.load_tokenizer(config, offline=offline)
        prompts = tokenised_prompts(config, self.adapter, offline=offline)
        tokenisation_s = time.perf_counter() - start

        server = server_for(self.request, self.workdir)
        meter = instruments.meter
        try:
            meter.begin("load")
            server.start(max(map(len, prompts)))
            ready_s = server.wait_ready(serving.readiness_timeout_s)
            load = meter.end("load")
            self.emit(
                ProgressEvent(event="model_loaded", detail=f"server ready in {ready_s:.1f} s")
            )
            baseline = None
            if config.baseline.enabled:
                meter.begin("baseline")
                time.sleep(config.baseline.duration_s)
                baseline = meter.end("baseline")
            self.emit(ProgressEvent(event="baseline_done"))
            records = self._records(prompts)
            zero, scraper = self._load(server, records, prompts, instruments)
        finally:
            server.stop()
        startup = Startup(load, baseline, tokenisation_s, ready_s)
        return self._result(records, zero, scraper, instruments, server, startup)

    def _records(self, prompts: list[list[int]]) -> list[RequestRecord]:
        serving = self.serving
        times = send_times(serving, planned_count(serving))
        return [
            RequestRecord(
                index=k,
                scheduled_s=t,
                warmup=k < serving.warmup_requests or t < serving.warmup_s,
                input_tokens=len(prompts[k % len(prompts)]),
            )
            for k, t in enumerate(times)
        ]

    def _load(
        self,
        server: Server,
        records: list[RequestRecord],
        prompts: list[list[int]],
        instruments: Instruments,
    ) -> tuple[float, MetricsScraper]:
        """Send the load; returns the clock zero of the records' times and the scraper."""
        generator = LoadGenerator(server.url, self.config, records, prompts, server.alive)
        if instruments.sampler is not None:
            instruments.sampler.set_phase("serving")
        zero = time.perf_counter()
        scraper = MetricsScraper(server.url, self.serving.slice_s, zero)
        scraper.start()
        done = threading.Event()
        progress = threading.Thread(target=self._progress, args=(records, done), daemon=True)
        progress.start()
        try:
            generator.run(zero)
        finally:
            done.set()
            scraper.stop()
            if instruments.sampler is not None:
                instruments.sampler.set_phase("idle")
        self.emit(ProgressEvent(event="warmup_done", detail="load sent"))
        if not server.alive():
            code = server.process.returncode if server.process else None
            write_requests(records, self.workdir / REQUESTS_FILE, [None] * len(records))
            raise ServerFailed(
                f"the {server.name} server died during the load (exit code {code}); the "
                f"per-request records so far are in {REQUESTS_FILE}; its log ends:\n"
                f"{server.log_tail()}"
            )
        return zero, scraper

    def _progress(self, records: list[RequestRecord], done: threading.Event) -> None:
        """A `batch` event every few seconds (requests ended / all): the host's stall check."""
        while not done.wait(PROGRESS_EVERY_S):
            ended = sum(1 for r in records if r.end_s is not None or r.error is not None)
            self.emit(ProgressEvent(event="batch", i=ended, n=len(records), detail="requests"))

    # figures ----------------------------------------------------------------------------------
    def _result(
        self,
        records: list[RequestRecord],
        zero: float,
        scraper: MetricsScraper,
        instruments: Instruments,
        server: Server,
        startup: Startup,
    ) -> ExperimentResult:
        serving, config = self.serving, self.config
        slo_met = [figures.meets_slo(r, serving.slo) for r in records]
        write_requests(records, self.workdir / REQUESTS_FILE, slo_met)
        window = steady_state(records, serving.steady_fraction, serving.slice_s)
        if window is None:
            raise RuntimeError(
                "no steady state: no measured request was in flight long enough (all failed, "
                "or every request is warm-up); see requests.parquet"
            )
        rows = instruments.sampler.rows if instruments.sampler is not None else []
        window_energy = self._window_energy(rows, zero, window, instruments)
        share = figures.attribution(records, window, serving.slo)
        good = figures.goodput(records, window, serving.slo)
        if good.completed_in_window == 0:
            raise RuntimeError(
                f"no measured request completed inside the steady state "
                f"({window.start_s:.2f}-{window.end_s:.2f} s); see requests.parquet"
            )
        self._write_slices(records, rows, zero)
        metrics_file = self._write_server_metrics(scraper)
        load, baseline = startup.load, startup.baseline
        completed = figures.measured_in(records, window, "end_s")
        # latency: requests sent inside the steady state (all measured ones if none was)
        in_window = figures.measured_in(records, window, "sent_s") or [
            r for r in records if not r.warmup and r.ok
        ]
        output_tokens = round(share.tokens)
        input_tokens = sum(r.input_tokens for r in completed)
        rec = Recording(
            request=self.request,
            started_at=self.started_at,
            t0=self.t0,
            build=None,
            build_skipped="serving starts the backend's server; nothing is compiled apart",
            load=load,
            tokenisation_s=startup.tokenisation_s,
            baseline=baseline,
            warmup_s=window.start_s,
            warmup_latencies_s=[],
            warmup_converged=True,
            warmup_final_cv=None,
            window=window_energy,
            passes=1,
            memory=MemoryStats(None, None, "held by the server process, not the runner"),
            shape=shape_from_config(config, offline=self.request.context.offline),
        )
        window_rows = [r for r in rows if zero + window.start_s <= r.t_s <= zero + window.end_s]
        e = energy(rec, output_tokens, window_rows, instruments)
        serving_figures = self._serving_figures(
            records, window, share, good, e, server, startup.ready_s, metrics_file
        )
        nvml_peak = peak_sum(window_rows, "memory_used_mb")
        return ExperimentResult(
            context=self.request.context,
            config=config,
            started_at=self.started_at,
            finished_at=utc_now(),
            environment=environment(self.adapter, instruments.nvml).model_copy(
                update={"backend_engine_arguments": _scalars(server.arguments)}
            ),
            timings=Timings(
                engine_build_s=None,
                engine_build_s_reason=rec.build_skipped,
                load_s=load.duration_s,
                tokenisation_s=rec.tokenisation_s,
                baseline_s=baseline.duration_s if baseline is not None else 0.0,
                warmup_s=window.start_s,
                warmup_batches=0,
                warmup_converged=True,
                warmup_final_cv=None,
                window_s=window.duration_s,
                total_s=time.perf_counter() - self.t0,
            ),
            tokens=TokenCounts(
                requests=len(completed),
                passes=1,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                batches=len(completed),
            ),
            throughput=Throughput(
                output_tokens_per_s=share.tokens / window.duration_s,
                total_tokens_per_s=(input_tokens + share.tokens) / window.duration_s,
                requests_per_s=len(completed) / window.duration_s,
            ),
            latency=_latency(in_window),
            energy=e,
            memory=Memory(
                peak_allocated_mb=None,
                peak_allocated_mb_reason="held by the server process, not the runner",
                peak_reserved_mb=None,
                peak_reserved_mb_reason="held by the server process, not the runner",
                nvml_peak_used_mb=nvml_peak,
                nvml_peak_used_mb_reason=None
                if nvml_peak is not None
                else (instruments.nvml_reason or "no memory samples"),
                process_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            ),
            telemetry=telemetry(window_rows, instruments.nvml_reason, bool(rows)),
            flops=flops(rec.shape, [(r.input_tokens, r.output_tokens) for r in completed]),  # type: ignore[arg-type]
            serving=serving_figures,
            warnings=self._warnings(rec, e, window_rows, instruments, records, window),
        )

    def _window_energy(
        self, rows: list[Row], zero: float, window: SteadyState, instruments: Instruments
    ) -> WindowEnergy:
        """The steady state's GPU energy: counter interpolated at its edges, else the power
        integral, else null with the reason."""
        start, end = zero + window.start_s, zero + window.end_s
        per_gpu, source, reason = _gpu_energy(rows, start, end)
        if per_gpu is None:
            source, reason = "unavailable", instruments.nvml_reason or reason
        return WindowEnergy(
            name="window",
            start_s=start,
            end_s=end,
            gpu_source=source,  # type: ignore[arg-type]
            per_gpu_j=per_gpu,
            gpu_reason=None if per_gpu is not None else reason,
            cpu_package_j=None,
            cpu_package_reason=CPU_REASON,
            dram_j=None,
            dram_reason=CPU_REASON,
        )

    def _serving_figures(
        self,
        records: list[RequestRecord],
        window: SteadyState,
        share: figures.Attribution,
        good: figures.Goodput,
        e: Energy,
        server: Server,
        ready_s: float,
        metrics_file: str | None,
    ) -> ServingFigures:
        serving = self.serving
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
            server=server.description,
            server_ready_s=ready_s,
            slices_file=SLICES_FILE,
            requests_file=REQUESTS_FILE,
            server_metrics_file=metrics_file,
            server_metrics_file_reason=None
            if metrics_file
            else "the server exposed none of its queue or KV-cache gauges at /metrics",
        )

    def _warnings(
        self,
        rec: Recording,
        e: Energy,
        rows: list[Row],
        instruments: Instruments,
        records: list[RequestRecord],
        window: SteadyState,
    ) -> list[QualityWarning]:
        serving = self.serving
        kept = [
            w
            for w in warnings(rec, e, rows, instruments, window.duration_s)  # type: ignore[arg-type]
            if w.code not in ("window_too_short", "warmup_not_converged")
        ]
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
                    message=f"{failed} measured request(s) failed; see {REQUESTS_FILE}",
                )
            )
        return kept

    # files ------------------------------------------------------------------------------------
    def _write_slices(self, records: list[RequestRecord], rows: list[Row], zero: float) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        end = max([r.end_s or 0.0 for r in records] + [0.0])
        cuts = figures.slices(end, self.serving.slice_s)
        energies = [_gpu_energy(rows, zero + a, zero + b)[0] for a, b in cuts]
        table = pa.table(
            {
                "start_s": pa.array([a for a, _ in cuts], pa.float64()),
                "end_s": pa.array([b for _, b in cuts], pa.float64()),
                "gpu_j": pa.array([sum(e) if e else None for e in energies], pa.float64()),
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
        pq.write_table(table, self.workdir / SLICES_FILE)

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
        pq.write_table(table, self.workdir / SERVER_METRICS_FILE)
        return SERVER_METRICS_FILE


def _gpu_energy(rows: list[Row], start: float, end: float) -> tuple[list[float] | None, str, str]:
    """Per-GPU energy over [start, end] from the sampler's rows: (values, source, reason)."""
    by_gpu: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_gpu[row.gpu].append(row)
    if not by_gpu:
        return None, "unavailable", "no NVML samples"
    counters: list[float] = []
    for gpu_rows in by_gpu.values():
        values = [r.sample.energy_mj for r in gpu_rows]
        if any(v is None for v in values):
            break
        found = counter_window_j([r.t_s for r in gpu_rows], values, start, end)  # type: ignore[arg-type]
        if found is None:
            break
        counters.append(found)
    else:
        return counters, "nvml_energy_counter", ""
    integrals: list[float] = []
    for gpu_rows in by_gpu.values():
        power = [(r.t_s, r.sample.power_w) for r in gpu_rows if r.sample.power_w is not None]
        found = window_energy_j([t for t, _ in power], [p for _, p in power], start, end)
        if found is None:
            return None, "unavailable", "the samples do not span the window"
        integrals.append(found)
    return integrals, "nvml_power_integral", ""


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


def _scalars(arguments: dict[str, object]) -> dict[str, str | int | float | bool | None]:
    return {
        k: v for k, v in arguments.items() if isinstance(v, str | int | float | bool) or v is None
    }  # type: ignore[misc]
