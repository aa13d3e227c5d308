"""Harness overhead: output tokens/s in llem-experiment's measured window vs a bare generate loop.

Same random-weight model (default 8 layers, hidden 512; it measures the harness, not any real
model), same prompts, same generation settings. The experiment runs as a subprocess on a work
folder; the bare loop, also a fresh subprocess, loads the same way and calls `model.generate` on
the same padded batches, timed by perf_counter with CUDA synchronised at both edges. The two
alternate for --repeats rounds; the median of the per-round ratios (llem / bare) is printed
last. Target: >= 0.98. Run it on an otherwise idle machine: a shared CPU makes the ratio noise.

    python benchmarks/harness_overhead.py [--device cpu|cuda] [--repeats 5] [--window-s 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from experiment_process import run_experiment
from llenergymeasure.backends.pytorch import PyTorchBackend
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.experiment.prompts import tokenised_prompts
from llenergymeasure.experiment.tiny_model import make_tiny_model


def request_for(args: argparse.Namespace, model: Path) -> RunRequest:
    return RunRequest.model_validate(
        {
            "config": {
                "model": str(model),
                "precision": args.precision,
                "gpu_count": 1 if args.device == "cuda" else 0,
                "n_prompts": args.prompts,
                "max_new_tokens": args.new_tokens,
                "prompts": {
                    "source": "synthetic",
                    "input_length": {"distribution": "fixed", "tokens": args.input_tokens},
                },
                "baseline": {"enabled": False},
                "min_window_s": args.window_s,
                "pytorch": {"batch_size": args.batch_size},
            },
            "context": {
                "study_id": "bench",
                "study_name": "harness_overhead",
                "run_id": "0000_bench000_c0",
                "run_index": 0,
                "config_hash": "0" * 64,
                "cycle": 0,
                "offline": True,
            },
        }
    )


def bare_worker(work: Path) -> None:
    """Fresh process: load, warm up, then a bare generate loop; prints output tokens/s."""
    request = RunRequest.model_validate_json((work / "config.json").read_text())
    backend = PyTorchBackend()
    backend.load_tokenizer(request.config, offline=True)
    prompts = tokenised_prompts(request.config, backend, offline=True).ids
    backend.load(request.config, offline=True, longest_prompt_tokens=max(map(len, prompts)))
    assert request.config.pytorch is not None
    size = request.config.pytorch.batch_size
    batches = [backend.prepare(prompts[k : k + size]) for k in range(0, len(prompts), size)]
    cuda = backend.device() == "cuda"
    bare_loop(backend, batches, 2.0, cuda)  # warm-up, as the experiment warms up
    print(
        json.dumps({"tokens_per_s": bare_loop(backend, batches, request.config.min_window_s, cuda)})
    )


def bare_tokens_per_s(work: Path) -> float:
    proc = subprocess.run(
        [sys.executable, __file__, "--bare-worker", str(work)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"bare loop failed:\n{proc.stderr[-3000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["tokens_per_s"])


def bare_loop(backend: PyTorchBackend, batches: list, window_s: float, cuda: bool) -> float:
    model = backend._model
    kwargs = dict(backend._gen_kwargs)
    tokens = 0
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        while True:
            for batch in batches:
                out = model.generate(**batch, **kwargs)
                tokens += (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]
            if time.perf_counter() - start >= window_s:
                break
    if cuda:
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--input-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--window-s", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bare-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker is not None:
        bare_worker(args.bare_worker)
        return 0
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")

    root = Path(tempfile.mkdtemp(prefix="llem-bench-"))
    model = make_tiny_model(root / "model", layers=args.layers, hidden=args.hidden, heads=8)
    request = request_for(args, model)
    size = args.batch_size
    print(
        f"model: random-weight Llama, {args.layers} layers, hidden {args.hidden}, "
        f"{args.precision} on {args.device}; {args.prompts} prompts x {args.input_tokens} tokens, "
        f"batch {size}, {args.new_tokens} new tokens, window >= {args.window_s} s"
    )
    ratios = []
    for k in range(args.repeats):
        measured = run_experiment(request, root / f"work{k}").throughput.output_tokens_per_s
        bare_work = root / f"bare{k}"
        bare_work.mkdir()
        (bare_work / "config.json").write_text(request.model_dump_json())
        bare = bare_tokens_per_s(bare_work)
        ratios.append(measured / bare)
        print(
            f"round {k + 1}: llem {measured:.1f} output tok/s, bare generate {bare:.1f} "
            f"output tok/s, ratio {measured / bare:.4f}",
            flush=True,
        )
    print(json.dumps({"ratios": [round(r, 4) for r in ratios]}))
    print(f"median ratio llem/bare: {statistics.median(ratios):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
