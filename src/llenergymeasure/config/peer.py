"""LLenergyMeasure v0.8's spellings and what they are here: one table for the error messages'
suggestions and for `llem config migrate`.

Paths are dotted, from the experiment's root (an experiment key), or from `execution.`. A key of
`RENAMED` becomes its value; a key of `UNMAPPED` has no counterpart, and its value says why. A
prefix rule (`PREFIXES`) moves a whole section (`vllm.engine.x` -> `vllm.x`).
"""

from __future__ import annotations

RENAMED: dict[str, str] = {
    "n": "n_prompts",
    "max_output_tokens": "max_new_tokens",
    "random_seed": "decoding.seed",
    "decoder": "decoding",
    "decoder.temperature": "decoding.temperature",
    "decoder.top_k": "decoding.top_k",
    "decoder.top_p": "decoding.top_p",
    "decoder.repetition_penalty": "decoding.repetition_penalty",
    "warmup.n_warmup": "warmup.min_batches",
    "warmup.min_prompts": "warmup.min_batches",
    "warmup.max_prompts": "warmup.max_batches",
    "warmup.window_size": "warmup.cv_window",
    "warmup.cv_threshold": "warmup.cv_bound",
    "baseline.duration_seconds": "baseline.duration_s",
    "vllm.sampling.max_tokens": "max_new_tokens",
    "vllm.sampling.ignore_eos": "fixed_output_length",
    "pytorch.revision": "revision",
    "config_name": "name",
    "execution.experiment_gap_seconds": "execution.gap_between_experiments_s",
    "execution.cycle_gap_seconds": "execution.gap_between_cycles_s",
}

# Whole sections whose keys keep their names one level up.
PREFIXES: dict[str, str] = {"vllm.engine.": "vllm."}

UNMAPPED: dict[str, str] = {
    "dataset": "named datasets (aienergyscore, ...) are not built in: give prompts: {source: "
    "jsonl, path: ...} or {source: hf_dataset, name: ...}, or synthetic prompts",
    "dataset_order": "prompts run in file order",
    "decoder.do_sample": "sampling follows decoding.temperature (0: greedy)",
    "decoder.preset": "write decoding.temperature/top_p/top_k out",
    "decoder.min_p": "not supported",
    "decoder.min_new_tokens": "fixed_output_length: true generates exactly max_new_tokens",
    "warmup.thermal_floor_seconds": "warm-up ends on latency stability; gaps and "
    "execution.cooldown_to_temp_c handle temperature",
    "warmup.convergence_detection": "warm-up always stops on latency stability (cv_bound)",
    "energy": "energy comes from the NVML energy counter (power sampling as fallback), always",
    "runners": "every backend runs in a container of its image: name images under images:",
    "lora": "LoRA adapters are not supported",
    "passthrough_kwargs": "engine arguments are the backend sections' keys",
    "vllm.sampling": "sampling follows decoding and max_new_tokens",
    "vllm.beam_search": "beam search is not supported",
    "vllm.engine.attention": "the attention backend is vLLM's choice (VLLM_ATTENTION_BACKEND "
    "passes through from the environment)",
    "tensorrt.engine_path": "engines are built and cached by llem (tensorrt.engine: tensorrt)",
    "execution.skip_preflight": "the pre-flight always runs",
}


def our_name(peer_path: str) -> str | None:
    """What a LLenergyMeasure v0.8 path is called here, or None when it is not one of its."""
    if peer_path in RENAMED:
        return RENAMED[peer_path]
    for old, new in PREFIXES.items():
        if peer_path.startswith(old):
            return new + peer_path.removeprefix(old)
    return None


def unmapped_reason(peer_path: str) -> str | None:
    """Why a LLenergyMeasure v0.8 path has no counterpart here, or None."""
    parts = peer_path.split(".")
    for cut in range(len(parts), 0, -1):
        reason = UNMAPPED.get(".".join(parts[:cut]))
        if reason is not None:
            return reason
    return None


def suggestion(path: str) -> str | None:
    """The hint for an unknown key that is a LLenergyMeasure v0.8 spelling, or None."""
    name = our_name(path)
    if name is not None and name != path:
        return f" (LLenergyMeasure v0.8's name; here it is '{name}')"
    reason = unmapped_reason(path)
    if reason is not None:
        return f" (a LLenergyMeasure v0.8 key with no counterpart here: {reason})"
    return None
