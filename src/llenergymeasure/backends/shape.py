"""ModelShape for engines that keep their weights out of reach (vLLM workers, TensorRT engines).

The model is instantiated from its config on PyTorch's `meta` device: every parameter exists with
its shape and no memory, so the count is that of the checkpoint's architecture (for a quantised
checkpoint, the logical, unpacked parameters, which is what a FLOPs estimate wants).
"""

from __future__ import annotations

from typing import Any

from llenergymeasure.backends.base import ModelShape, hub_kwargs
from llenergymeasure.contract.config import ExperimentConfig


def shape_from_config(experiment: ExperimentConfig, *, offline: bool) -> ModelShape:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(experiment.model, **hub_kwargs(experiment, offline=offline))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return shape_of(skeleton)


def shape_of(model: Any) -> ModelShape:
    """The shape of a transformers causal LM (loaded, or a `meta` skeleton)."""
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding
    text = model.config.get_text_config()
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return ModelShape(
        parameters=params,
        matmul_parameters=params if tied else params - embedding.numel(),
        layers=text.num_hidden_layers,
        attention_dim=heads * head_dim,
    )
