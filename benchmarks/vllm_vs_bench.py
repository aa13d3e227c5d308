"""llem's vLLM run vs vLLM's own `vllm bench throughput`, in both engine-multiprocessing modes.

Same image (llenergymeasure/vllm-cpu by default), same random-weight model (it measures the
harness, not any real model), same prompt and output lengths, dtype, sampling (temperature 1,
EOS ignored, no detokenisation: what `vllm bench throughput` does), enforce-eager, max_num_seqs,
max_model_len (set alike) and KV cache size (llem's first run records the size it chose; the
bench gets the same). Each arm is a fresh container with no network. The arms alternate (their
order flips every round), for --rounds rounds per mode; each prints output tokens/s: llem's
from its measured window (`throughput.output_tokens_per_s`), the bench's as requests x output
length / its elapsed time. Printed last: the median of the per-round ratios llem / bench, per
mode. Target >= 0.98.

    python benchmarks/vllm_vs_bench.py [--rounds 5] [--prompts 64] [--input-len 64]
        [--output-len 64] [--image llenergymeasure/vllm-cpu:latest]

Run it on an otherwise idle machine: a shared CPU makes the ratio noise. On a GPU host, pass
`--gpu` with the GPU vLLM image (`llenergymeasure/vllm`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.contract.run import RunRequest

MODES = {"multiprocessing on (default)": True, "multiprocessing off": False}


def docker_run(args: argparse.Namespace, mounts: dict[Path, str], *command: str) -> None:
    volumes = [f"-v{host}:{inside}" for host, inside in mounts.items()]
    devices = ["--gpus", "device=0"] if args.gpu else []
    base = ["docker", "run", "--rm", "--network", "none", "--shm-size", "4g", "-e", "HOME=/tmp"]
    user = ["-u", f"{os.getuid()}:{os.getgid()}"]
    proc = subprocess.run(
        [*base, *user, *devices, *volumes, *command], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"container failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def make_model(args: argparse.Namespace, folder: Path) -> Path:
    """A random-weight Llama shape with head_dim 64 (vLLM's CPU attention needs >= 64)."""
    docker_run(
        args,
        {folder: "/out"},
        *("--entrypoint", "python3", args.image),
        *("-m", "llenergymeasure.experiment.tiny_model", "/out/model"),
        *("--layers", str(args.layers), "--hidden", str(args.hidden), "--heads", "4"),
    )
    return folder / "model"


def model_len(args: argparse.Namespace) -> int:
    """Both arms' max_model_len: the bench's random prompts may re-tokenise a little longer
    than asked, and it refuses a request that might not fit, so both get some room."""
    return args.input_len + args.output_len + 64


def llem_request(args: argparse.Namespace, multiprocessing: bool) -> RunRequest:
    return RunRequest.model_validate(
        {
            "config": {
                "model": "/model",
                "backend": "vllm",
                "precision": "fp32",
                "gpu_count": 1 if args.gpu else 0,
                "n_prompts": args.prompts,
                "max_new_tokens": args.output_len,
                "prompts": {
                    "source": "synthetic",
                    "input_length": {"distribution": "fixed", "tokens": args.input_len},
                },
                "decoding": {"temperature": 1.0},
                "baseline": {"enabled": False},
                "warmup": {"min_batches": 1, "max_batches": 2, "cv_window": 2, "cv_bound": 0.5},
                "min_window_s": args.window_s,
                "vllm": {
                    "enforce_eager": True,
                    "max_num_seqs": args.max_num_seqs,
                    "max_model_len": model_len(args),
                    "engine_multiprocessing": multiprocessing,
                },
            },
            "context": {
                "study_id": "bench",
                "study_name": "vllm_vs_bench",
                "run_id": "0000_bench000_c0",
                "run_index": 0,
                "config_hash": "0" * 64,
                "cycle": 0,
                "offline": True,
            },
        }
    )


def llem_arm(args: argparse.Namespace, model: Path, multiprocessing: bool) -> ExperimentResult:
    with tempfile.TemporaryDirectory(prefix="llem-vllm-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o777)
        request = llem_request(args, multiprocessing)
        (work / "config.json").write_text(request.model_dump_json())
        docker_run(
            args,
            {work: "/llem/work", model: "/model"},
            *("-e", f"VLLM_ENABLE_V1_MULTIPROCESSING={int(multiprocessing)}", args.image),
        )
        return ExperimentResult.model_validate_json((work / "result.json").read_text())


def bench_arm(args: argparse.Namespace, model: Path, multiprocessing: bool, kv_bytes: int) -> float:
    with tempfile.TemporaryDirectory(prefix="vllm-bench-") as tmp:
        out = Path(tmp)
        os.chmod(out, 0o777)
        engine = [
            *("--model", "/model", "--dtype", "float32", "--enforce-eager", "--seed", "0"),
            *("--max-num-seqs", str(args.max_num_seqs)),
            *("--max-model-len", str(model_len(args))),
        ]
        if not args.gpu:
            engine += ["--kv-cache-memory-bytes", str(kv_bytes)]
        docker_run(
            args,
            {out: "/out", model: "/model"},
            *("-e", f"VLLM_ENABLE_V1_MULTIPROCESSING={int(multiprocessing)}"),
            *("-e", "VLLM_NO_USAGE_STATS=1", "-e", "VLLM_WORKER_MULTIPROC_METHOD=spawn"),
            *("--entrypoint", "vllm", args.image, "bench", "throughput"),
            *engine,
            *("--dataset-name", "random", "--num-prompts", str(args.prompts)),
            *("--random-input-len", str(args.input_len), "--random-output-len"),
            *(str(args.output_len), "--random-range-ratio", "0", "--disable-detokenize"),
            *("--output-json", "/out/bench.json"),
        )
        report = json.loads((out / "bench.json").read_text())
    return report["num_requests"] * args.output_len / report["elapsed_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--max-num-seqs", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--window-s", type=float, default=5.0)
    parser.add_argument("--image", default="llenergymeasure/vllm-cpu:latest")
    parser.add_argument("--gpu", action="store_true", help="run on GPU 0 (GPU vLLM image)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vllm-bench-model-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o777)
        model = make_model(args, folder)
        ratios: dict[str, list[float]] = {mode: [] for mode in MODES}
        kv_bytes = 0
        for round_no in range(args.rounds):
            for mode, multiprocessing in MODES.items():
                figures: dict[str, float] = {}
                arms = ["llem", "bench"] if round_no % 2 == 0 else ["bench", "llem"]
                if not kv_bytes:
                    arms = ["llem", "bench"]  # the bench takes the KV size llem chose
                for arm in arms:
                    if arm == "llem":
                        result = llem_arm(args, model, multiprocessing)
                        used = result.environment.backend_engine_arguments
                        kv_bytes = int(used.get("kv_cache_memory_bytes") or 0) or kv_bytes
                        figures[arm] = result.throughput.output_tokens_per_s
                    else:
                        figures[arm] = bench_arm(args, model, multiprocessing, kv_bytes)
                ratio = figures["llem"] / figures["bench"]
                ratios[mode].append(ratio)
                print(
                    f"round {round_no + 1} {mode}: llem {figures['llem']:.1f} tok/s, "
                    f"vllm bench {figures['bench']:.1f} tok/s, ratio {ratio:.3f}",
                    flush=True,
                )
    for mode, values in ratios.items():
        print(f"{mode}: median ratio llem / vllm bench = {statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
