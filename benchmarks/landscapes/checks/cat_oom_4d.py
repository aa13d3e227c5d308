"""Batch x temperature x precision x output length, 7 x 4 x 3 x 4 = 336 configurations: a
categorical key, an out-of-memory region and a latency bound: the hard case.

fp32 costs 1.6 x fp16 (bf16 1.05 x); energy falls with the batch (1 + 4 / b) and is best at
temperature 0.8 and 128 new tokens. Temperatures above 0.85 with a batch of 32 or more crash
(out of memory); the TTFT bound (p99 <= 150 ms, 20 + 3 b + 2000 / c) cuts off the batch of 64.
The optimum (batch 32, fp16, 0.8, 128) sits between the two; three configurations are within
5 % of it.
"""

from __future__ import annotations

import math
from typing import Any

PRECISION_COST = {"fp32": 1.6, "fp16": 1.0, "bf16": 1.05}
SPACE: dict[str, Any] = {
    "pytorch.batch_size": [2**i for i in range(7)],
    "decoding.temperature": [0.6, 0.7, 0.8, 0.9],
    "precision": ["fp32", "fp16", "bf16"],
    "max_new_tokens": [32, 64, 128, 256],
}
OBJECTIVE = {"minimize": "energy.j_per_output_token"}
CONSTRAINTS = ["latency.ttft_ms.p99 <= 150"]


def evaluate(params: dict[str, Any]) -> dict[str, float] | None:
    b, t = params["pytorch.batch_size"], params["decoding.temperature"]
    p, c = params["precision"], params["max_new_tokens"]
    if t > 0.85 and b >= 32:
        return None
    energy = (
        PRECISION_COST[p]
        * (1 + 4 / b)
        * (1 + 5 * (t - 0.8) ** 2)
        * (1 + 0.2 * (math.log2(c) - 7) ** 2 / 9)
    )
    return {"energy.j_per_output_token": energy, "latency.ttft_ms.p99": 20 + 3 * b + 2000 / c}
