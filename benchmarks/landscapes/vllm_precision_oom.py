"""vLLM offline, Llama-3.1-8B on one L40S 48 GB: precision x gpu_memory_utilization x
max_num_seqs x enforce_eager, J per output token under an inter-token latency bound; runs that
do not fit in memory crash. 3 x 8 x 5 x 2 = 240 configurations.

A stylised model of the engine (smooth within each categorical value, not tuned to any
sampler); the same mechanisms as `vllm_batch_memory.py`, on a smaller GPU (864 GB/s, 350 W):

- Precision sets the weights (fp32: 32 GB, fp16 and bf16: 16 GB) and the KV cache's dtype
  (`kv_cache_dtype: auto`): 0.28 or 0.14 GB a sequence of about 1,150 tokens. fp16 and bf16
  run the same kernels at the same speed: their figures are equal, as on the hardware.
- Reserve: CUDA graphs take about 3 GB plus 4 MB per max_num_seqs (a graph per batch size up
  to it); `enforce_eager` captures none (1.5 GB) but launches every kernel from Python, about
  4 ms more per step.
- Out of memory: where `gpu_memory_utilization` x 48 GB, less the weights and the reserve,
  leaves the KV cache less than 8 sequences, vLLM does not start (`evaluate` returns None: the
  run crashes): fp32 below about 0.8 of memory, 35 of its 80 configurations; every 16-bit one
  fits.
- Concurrency about min(max_num_seqs, KV capacity); above capacity, preemption recomputes 0.4 x
  the overflow ratio of the work. A decode step reads the weights (their size / 864 GB/s) and
  each sequence's KV; power is 90 W + 260 W x (1 - exp(-concurrency / 64)); the allocator
  slows steps near the top of memory as in `vllm_batch_memory.py`.
- The bound: inter-token latency p50 <= 30 ms (about 33 tokens/s per stream). It cuts off the
  unconstrained optimum (max_num_seqs 128) and every fp32 configuration.
"""

from __future__ import annotations

import math
from typing import Any

SPACE: dict[str, Any] = {
    "precision": ["fp32", "fp16", "bf16"],
    "vllm.gpu_memory_utilization": {"low": 0.6, "high": 0.95, "step": 0.05},
    "vllm.max_num_seqs": [16, 32, 64, 128, 256],
    "vllm.enforce_eager": [False, True],
}
OBJECTIVE = {"minimize": "energy.j_per_output_token"}
CONSTRAINTS = ["latency.itl_ms.p50 <= 30"]

GPU_GB = 48.0
BANDWIDTH_GB_PER_MS = 0.864
WEIGHTS_GB = {"fp32": 32.0, "fp16": 16.0, "bf16": 16.0}
KV_PER_SEQUENCE_GB = {"fp32": 0.28, "fp16": 0.14, "bf16": 0.14}
GRAPHS_GB, GRAPH_PER_SEQ_GB, EAGER_RESERVE_GB = 3.0, 0.004, 1.5
EAGER_STEP_MS = 4.0
MIN_SEQUENCES = 8
IDLE_W, DYNAMIC_W, HALF_LOAD = 90.0, 260.0, 64.0
PREEMPTION_WASTE = 0.4


def soft_min(a: float, b: float, sharpness: float = 4.0) -> float:
    return float((a**-sharpness + b**-sharpness) ** (-1 / sharpness))


def evaluate(params: dict[str, Any]) -> dict[str, float] | None:
    precision = params["precision"]
    memory = float(params["vllm.gpu_memory_utilization"])
    seqs = float(params["vllm.max_num_seqs"])
    eager = bool(params["vllm.enforce_eager"])
    reserve = EAGER_RESERVE_GB if eager else GRAPHS_GB + GRAPH_PER_SEQ_GB * seqs
    kv_room = GPU_GB * memory - WEIGHTS_GB[precision] - reserve
    capacity = kv_room / KV_PER_SEQUENCE_GB[precision]
    if capacity < MIN_SEQUENCES:
        return None  # out of memory: the engine does not start
    running = soft_min(seqs, capacity)
    waste = PREEMPTION_WASTE * max(0.0, seqs / capacity - 1)
    allocator = 1 + 0.5 * math.exp((memory - 0.95) / 0.02)
    step_ms = (
        WEIGHTS_GB[precision] / BANDWIDTH_GB_PER_MS
        + KV_PER_SEQUENCE_GB[precision] / BANDWIDTH_GB_PER_MS * running
        + (EAGER_STEP_MS if eager else 0.0)
    ) * allocator
    power_w = IDLE_W + DYNAMIC_W * (1 - math.exp(-running / HALF_LOAD))
    tokens_per_s = running / step_ms * 1000 / (1 + waste)
    return {
        "energy.j_per_output_token": power_w / tokens_per_s,
        "throughput.output_tokens_per_s": tokens_per_s,
        "latency.itl_ms.p50": step_ms,
    }
