"""llem's serving mode vs vLLM's own `vllm bench serve`: same image, same server arguments, same
random-weight model (it measures the harness, not any real model), same rate, prompt and output
lengths; then the generator's send lag at a high rate.

Each arm is a fresh container with no network. The llem arm is `llem-experiment` on a serving
config (Poisson arrivals, EOS ignored); the bench arm starts the very server command line llem's
result records (`serving.server`) and runs `vllm bench serve` against it (random dataset, the
same rate, seed 0, EOS ignored). Compared over the whole load, as the bench reports it: output
tokens/s (llem's from requests.parquet: all tokens / first send to last answer) and TTFT p50.
The arms alternate for --rounds rounds (llem first in the first, so the bench has the
server command). At a finite rate both arms' throughput follows their own random arrival
sequences (different generators), so throughput is compared at `--rate inf --max-concurrency
N`, where the server is the bound and each client's own cost shows; TTFT at a finite rate.
Printed: per round both figures and the ratios llem / bench; their medians (throughput target
>= 0.98); then llem's send-lag p50/p90/p99 and achieved rate at --lag-rate.

`--dataset sharegpt`: both arms get the same ShareGPT-format file (written here: --requests
conversations of varied prompt and answer lengths), llem as `prompts: {source: sharegpt}` with
output lengths from the answers, the bench as `--dataset-name sharegpt` (every conversation is
sent by both, in their own orders). `--stages R1,R2,...`: llem alone, the rates as stages in one
server start vs one container per rate; printed: wall time of each way, and per rate output
tok/s and TTFT p50 both ways.

    python benchmarks/serving_vs_bench.py [--rounds 3] [--rate 8 | --rate inf
        --max-concurrency 16] [--requests 200] [--input-len 32] [--output-len 32]
        [--dataset random|sharegpt] [--lag-rate 200] [--stages 2,4,8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.run import RunRequest

IMAGE = "llenergymeasure/vllm-cpu:latest"
ENV = ["-e", "VLLM_NO_USAGE_STATS=1", "-e", "VLLM_WORKER_MULTIPROC_METHOD=spawn", "-e", "HOME=/tmp"]


def docker_run(mounts: dict[Path, str], *command: str) -> None:
    volumes = [f"-v{host}:{inside}" for host, inside in mounts.items()]
    base = ["docker", "run", "--rm", "--network", "none", "--shm-size", "2g", *ENV]
    user = ["-u", f"{os.getuid()}:{os.getgid()}"]
    proc = subprocess.run([*base, *user, *volumes, *command], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"container failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def make_model(folder: Path) -> Path:
    docker_run(
        {folder: "/out"},
        *("--entrypoint", "python3", IMAGE),
        *("-m", "llenergymeasure.experiment.tiny_model", "/out/model"),
        *("--layers", "4", "--hidden", "256", "--heads", "4", "--context", "1024"),
    )
    return folder / "model"


SHAREGPT = "sharegpt.json"  # next to the model, mounted with it
SHAREGPT_MAX_TOKENS = 256  # above the longest answer written here: llem caps at max_new_tokens
WORDS = ("energy", "token", "power", "joule", "watt", "server", "request", "answer", "cache")


def write_sharegpt(folder: Path, n: int) -> None:
    """n two-turn conversations, 8-40 prompt words and 4-30 answer words, seeded."""
    draw = random.Random(0)

    def text(low: int, high: int) -> str:
        return " ".join(draw.choice(WORDS) for _ in range(draw.randint(low, high)))

    conversations = [
        {
            "id": str(k),
            "conversations": [
                {"from": "human", "value": text(8, 40)},
                {"from": "gpt", "value": text(4, 30)},
            ],
        }
        for k in range(n)
    ]
    (folder / SHAREGPT).write_text(json.dumps(conversations))


def prompts(args: argparse.Namespace) -> dict:
    if args.dataset == "sharegpt":
        return {"source": "sharegpt", "path": f"/model/{SHAREGPT}"}
    return {
        "source": "synthetic",
        "input_length": {"distribution": "fixed", "tokens": args.input_len},
    }


def request(
    args: argparse.Namespace, rate: float, n: int, stages: list[float] | None = None
) -> RunRequest:
    load: dict = {"request_rate": "inf" if rate == float("inf") else rate}
    if stages is not None:
        load = {"stages": [{"request_rate": r} for r in stages]}
    return RunRequest.model_validate(
        {
            "config": {
                "model": "/model",
                "backend": "vllm",
                "precision": "fp32",
                "gpu_count": 0,
                "mode": "serving",
                "n_prompts": n,
                # ShareGPT: each answer's length, uncapped as the bench sends it
                "max_new_tokens": SHAREGPT_MAX_TOKENS
                if args.dataset == "sharegpt"
                else args.output_len,
                "prompts": prompts(args),
                "baseline": {"enabled": False},
                "vllm": {"enforce_eager": True, "max_num_seqs": 64, "max_model_len": 512},
                "serving": {
                    **load,
                    "n_requests": n,
                    "max_concurrency": args.max_concurrency,
                    "seed": 0,
                },
            },
            "context": {
                "study_id": "bench",
                "study_name": "serving_vs_bench",
                "run_id": "0000_bench000_c0",
                "run_index": 0,
                "config_hash": "0" * 64,
                "cycle": 0,
                "offline": True,
            },
        }
    )


def llem_arm(model: Path, req: RunRequest) -> tuple[ExperimentResult, pd.DataFrame]:
    with tempfile.TemporaryDirectory(prefix="llem-serving-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o777)
        (work / "config.json").write_text(req.model_dump_json())
        try:
            docker_run({work: "/llem/work", model: "/model"}, IMAGE)
        except SystemExit:
            raise SystemExit(
                f"llem-experiment failed: {(work / 'error.json').read_text()[:3000]}"
            ) from None
        result = ExperimentResult.model_validate_json((work / "result.json").read_text())
        return result, pd.read_parquet(work / "requests.parquet")


def whole_load(requests: pd.DataFrame) -> tuple[float, float, float, float]:
    """(output tokens/s over first send to last answer, TTFT p50 ms, mean input and output
    tokens per request), as the bench reports them."""
    span = requests["end_s"].max() - requests["sent_s"].min()
    return (
        requests["output_tokens"].sum() / span,
        float(requests["ttft_ms"].median()),
        float(requests["input_tokens"].mean()),
        float(requests["output_tokens"].mean()),
    )


def bench_figures(report: dict) -> tuple[float, float, float, float]:
    done = report["completed"]
    return (
        report["output_throughput"],
        report["median_ttft_ms"],
        report["total_input_tokens"] / done,
        report["total_output_tokens"] / done,
    )


def bench_arm(model: Path, server: str, args: argparse.Namespace) -> dict:
    command = shlex.split(server.split(": ", 1)[1])
    port = command.index("--port") + 1
    command[port] = "8000"
    script = (
        f"{shlex.join(command)} > /out/server.log 2>&1 &\n"
        "until python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health')\""
        " 2>/dev/null; do sleep 0.5; done\n"
        "vllm bench serve --backend vllm --base-url http://127.0.0.1:8000 "
        "--endpoint /v1/completions --model llem-model --tokenizer /model "
        + (
            f"--dataset-name sharegpt --dataset-path /model/{SHAREGPT} "
            if args.dataset == "sharegpt"
            else f"--dataset-name random --random-input-len {args.input_len} "
            f"--random-output-len {args.output_len} --random-range-ratio 0 "
        )
        + f"--num-prompts {args.requests} --request-rate {args.rate} --ignore-eos --seed 0 "
        f"--temperature 0 "
        + (f"--max-concurrency {args.max_concurrency} " if args.max_concurrency else "")
        + "--save-result --result-dir /out --result-filename bench.json > /out/bench.log 2>&1\n"
    )
    with tempfile.TemporaryDirectory(prefix="vllm-serve-bench-") as tmp:
        out = Path(tmp)
        os.chmod(out, 0o777)
        docker_run({out: "/out", model: "/model"}, "--entrypoint", "sh", IMAGE, "-c", script)
        return json.loads((out / "bench.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=8.0, help="req/s; inf: all at once")
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--lag-rate", type=float, default=200.0)
    parser.add_argument("--dataset", choices=("random", "sharegpt"), default="random")
    parser.add_argument("--stages", help="comma-separated rates: stages vs separate servers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serving-bench-model-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o777)
        model = make_model(folder)
        write_sharegpt(model, args.requests)
        if args.stages:
            stages_vs_servers(model, args, [float(r) for r in args.stages.split(",")])
            return
        throughput, ttft = [], []
        server = ""  # the server command line llem records; the bench starts the same
        for round_no in range(args.rounds):
            figures: dict[str, tuple[float, float, float, float]] = {}
            for arm in ("llem", "bench") if round_no % 2 == 0 else ("bench", "llem"):
                if arm == "llem":
                    result, requests = llem_arm(model, request(args, args.rate, args.requests))
                    server = result.serving.server
                    figures[arm] = whole_load(requests)
                else:
                    report = bench_arm(model, server, args)
                    figures[arm] = bench_figures(report)
            throughput.append(figures["llem"][0] / figures["bench"][0])
            ttft.append(figures["llem"][1] / figures["bench"][1])
            print(
                f"round {round_no + 1}: output tok/s llem {figures['llem'][0]:.1f} vs bench "
                f"{figures['bench'][0]:.1f} (ratio {throughput[-1]:.3f}); TTFT p50 ms llem "
                f"{figures['llem'][1]:.1f} vs bench {figures['bench'][1]:.1f} "
                f"(ratio {ttft[-1]:.3f}); mean tokens in/out per request llem "
                f"{figures['llem'][2]:.1f}/{figures['llem'][3]:.1f} vs bench "
                f"{figures['bench'][2]:.1f}/{figures['bench'][3]:.1f}",
                flush=True,
            )
        if args.rounds:
            print(
                f"median ratios llem / vllm bench serve at {args.rate:g} req/s: output tok/s "
                f"{statistics.median(throughput):.3f} (target >= 0.98), TTFT p50 "
                f"{statistics.median(ttft):.3f}"
            )
        send_lag(model, args)


def stages_vs_servers(model: Path, args: argparse.Namespace, rates: list[float]) -> None:
    """The rates as stages of one server start, then one container per rate."""
    started = time.perf_counter()
    staged, _ = llem_arm(model, request(args, rates[0], args.requests, stages=rates))
    staged_s = time.perf_counter() - started
    started = time.perf_counter()
    separate = [llem_arm(model, request(args, rate, args.requests))[0] for rate in rates]
    separate_s = time.perf_counter() - started
    print(
        f"{len(rates)} rates: stages in one server {staged_s:.0f} s wall, separate servers "
        f"{separate_s:.0f} s ({(1 - staged_s / separate_s) * 100:.0f} % saved)"
    )
    for stage, alone in zip(staged.stages, separate, strict=True):
        assert stage.throughput is not None and stage.latency is not None
        ttft_stage = stage.latency.ttft_ms.p50 if stage.latency.ttft_ms else float("nan")
        ttft_alone = alone.latency.ttft_ms.p50 if alone.latency.ttft_ms else float("nan")
        print(
            f"  {stage.request_rate:g} req/s: output tok/s stage "
            f"{stage.throughput.output_tokens_per_s:.1f} vs alone "
            f"{alone.throughput.output_tokens_per_s:.1f}; TTFT p50 ms stage {ttft_stage:.1f} "
            f"vs alone {ttft_alone:.1f}; achieved req/s {stage.serving.achieved_request_rate:.2f} "
            f"vs {alone.serving.achieved_request_rate:.2f}"
        )


def send_lag(model: Path, args: argparse.Namespace) -> None:
    """llem's generator alone at --lag-rate: its achieved rate and how late it sent."""
    result, _ = llem_arm(model, request(args, args.lag_rate, args.requests))
    lag = result.serving.send_lag_ms
    print(
        f"send lag at {args.lag_rate:g} req/s target: achieved "
        f"{result.serving.achieved_request_rate:.1f} req/s; lag ms p50 {lag.p50:.3f}, "
        f"p90 {lag.p90:.3f}, p99 {lag.p99:.3f}, max {lag.max:.3f}; warnings "
        f"{[w.code for w in result.warnings]}"
    )


if __name__ == "__main__":
    main()
