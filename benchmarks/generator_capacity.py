"""The serving load generator's own capacity: the highest request rate it paces accurately.

The generator (`experiment.serving.loadgen`, the code a serving run uses) sends constant-rate
arrivals to `openai_standin.py` in another process on loopback, which streams `--tokens` tokens
per request with a fixed `--gap-ms` between them. Each rate runs for `--seconds`; a rate passes
when the send lag (sent minus scheduled) is p99 <= 5 ms and the achieved rate (requests - 1 over
first to last send) is within 1 % of the scheduled rate. Printed per rate and arrival process
(constant, then Poisson at the same mean): achieved and scheduled rate, send-lag p50/p99/max,
requests completed/sent; then the highest rate that passed with each.
The server shares this host's cores: on a 2-core host the two processes compete.

    python benchmarks/generator_capacity.py [--rates 250,500,1000,1500,2000] [--seconds 5]
        [--tokens 4] [--gap-ms 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.experiment.prompts import PromptSet
from llenergymeasure.experiment.serving.figures import achieved_rate
from llenergymeasure.experiment.serving.loadgen import LoadGenerator
from llenergymeasure.experiment.serving.records import RequestRecord
from llenergymeasure.experiment.serving.servers import free_port
from llenergymeasure.experiment.serving.workload import Workload

LAG_P99_MS = 5.0
RATE_TOLERANCE = 0.01


def start_standin(tokens_gap_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    script = Path(__file__).with_name("openai_standin.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--gap-ms", str(tokens_gap_ms)]
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the stand-in server did not answer /health")


def run_rate(url: str, rate: float, seconds: float, tokens: int, arrival: str) -> dict[str, float]:
    config = ExperimentConfig(
        model="standin",
        backend="vllm",
        mode="serving",
        max_new_tokens=tokens,
        serving={"request_rate": rate, "arrival": arrival, "n_requests": int(rate * seconds)},
    )
    serving = config.serving
    assert serving is not None
    workload = Workload(config, PromptSet([[7] * 16]), str, lambda m: [7] * 16)
    records = workload.records()
    LoadGenerator(url, workload, records, lambda: True).run(time.perf_counter())
    lags = sorted(r.send_lag_s * 1000 for r in records if r.send_lag_s is not None)
    return {
        "achieved": achieved_rate(records),
        "scheduled": achieved_rate(
            [
                RequestRecord(r.index, r.scheduled_s, False, 16, sent_s=r.scheduled_s)
                for r in records
            ]
        ),
        "lag_p50": statistics.median(lags),
        "lag_p99": lags[int(0.99 * (len(lags) - 1))],
        "lag_max": lags[-1],
        "completed": sum(1 for r in records if r.ok),
        "sent": len(lags),
    }


def passes(row: dict[str, float]) -> bool:
    off = abs(row["achieved"] - row["scheduled"]) / row["scheduled"]
    return row["lag_p99"] <= LAG_P99_MS and off <= RATE_TOLERANCE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="250,500,1000,1500,2000,3000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=4)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    args = parser.parse_args()
    process, url = start_standin(args.gap_ms)
    best: dict[str, float | None] = {"constant": None, "poisson": None}
    try:
        print(
            f"{'rate':>6} {'arrival':>8} {'achieved':>9} {'scheduled':>9} {'lag p50':>8} "
            f"{'p99':>7} {'max':>7}  done/sent  pass"
        )
        for rate in [float(r) for r in args.rates.split(",")]:
            for arrival in best:
                row = run_rate(url, rate, args.seconds, args.tokens, arrival)
                ok = passes(row)
                if ok:
                    best[arrival] = rate
                print(
                    f"{rate:6.0f} {arrival:>8} {row['achieved']:9.1f} {row['scheduled']:9.1f} "
                    f"{row['lag_p50']:6.2f}ms {row['lag_p99']:5.2f}ms {row['lag_max']:5.1f}ms  "
                    f"{row['completed']:.0f}/{row['sent']:.0f}  {'yes' if ok else 'no'}"
                )
        for arrival, rate in best.items():
            print(f"highest {arrival} rate within p99 lag {LAG_P99_MS:g} ms and 1 %: {rate} req/s")
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
