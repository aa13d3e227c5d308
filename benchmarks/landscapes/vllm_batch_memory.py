"""vLLM offline, Llama-3.1-8B in fp16 on one H100 80 GB: max_num_seqs x gpu_memory_utilization,
J per output token under an inter-token latency bound. 15 x 23 = 345 configurations.

A stylised model of the engine (smooth, one optimum, not tuned to any sampler):

- KV cache. vLLM gives the KV cache what `gpu_memory_utilization` x 80 GB leaves after the
  weights (8 B parameters x 2 bytes = 16 GB) and its profiled reserve (activations, CUDA
  graphs: about 4 GB). Llama-3.1-8B's KV is 128 KiB per token (32 layers x 8 KV heads x 128 x
  K and V x 2 bytes); at about 1,150 live tokens per sequence (1,024 in, 256 out) that is
  0.15 GB a sequence, so the cache holds `capacity` = (80 m - 20) / 0.15 sequences: 133 at
  m = 0.5, 368 at m = 0.94.
- Concurrency. The scheduler runs up to max_num_seqs sequences, as many as the cache holds:
  about min(max_num_seqs, capacity) (a smooth minimum). Above capacity, running sequences are
  preempted and recomputed: a waste of 0.4 x (max_num_seqs / capacity - 1) of the work.
- A decode step reads the weights once (about 10 ms at the ~1.6 TB/s the step achieves) and
  each sequence's KV (0.15 GB at 3.35 TB/s: 0.05 ms); every running sequence gets a token.
- Power rises with load and saturates: 150 W + 500 W x (1 - exp(-concurrency / 96)).
- Near the top of memory the allocator has no headroom and retries (PyTorch's
  `num_alloc_retries`): every step slows by 1 + 0.5 exp((m - 0.95) / 0.02).
- J per output token = power x step time / concurrency x (1 + waste); the inter-token latency
  p50 is the step time. The bound, 22 ms (about 45 tokens/s per stream), cuts off the large
  batches at high memory, where the unconstrained optimum lies.
"""

from __future__ import annotations

import math
from typing import Any

SPACE: dict[str, Any] = {
    "vllm.max_num_seqs": [16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512],
    "vllm.gpu_memory_utilization": {"low": 0.5, "high": 0.94, "step": 0.02},
}
OBJECTIVE = {"minimize": "energy.j_per_output_token"}
CONSTRAINTS = ["latency.itl_ms.p50 <= 22"]

GPU_GB = 80.0
WEIGHTS_GB = 16.0
RESERVE_GB = 4.0
KV_PER_SEQUENCE_GB = 0.15
WEIGHTS_STEP_MS = 10.0
KV_STEP_MS = 0.05
IDLE_W, DYNAMIC_W, HALF_LOAD = 150.0, 500.0, 96.0
PREEMPTION_WASTE = 0.4


def soft_min(a: float, b: float, sharpness: float = 4.0) -> float:
    return float((a**-sharpness + b**-sharpness) ** (-1 / sharpness))


def evaluate(params: dict[str, Any]) -> dict[str, float] | None:
    seqs = float(params["vllm.max_num_seqs"])
    memory = float(params["vllm.gpu_memory_utilization"])
    capacity = (GPU_GB * memory - WEIGHTS_GB - RESERVE_GB) / KV_PER_SEQUENCE_GB
    running = soft_min(seqs, capacity)
    waste = PREEMPTION_WASTE * max(0.0, seqs / capacity - 1)
    allocator = 1 + 0.5 * math.exp((memory - 0.95) / 0.02)
    step_ms = (WEIGHTS_STEP_MS + KV_STEP_MS * running) * allocator
    power_w = IDLE_W + DYNAMIC_W * (1 - math.exp(-running / HALF_LOAD))
    tokens_per_s = running / step_ms * 1000 / (1 + waste)
    return {
        "energy.j_per_output_token": power_w / tokens_per_s,
        "throughput.output_tokens_per_s": tokens_per_s,
        "latency.itl_ms.p50": step_ms,
    }
