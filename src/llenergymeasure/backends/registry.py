"""Backend name -> adapter. Adapters are imported only when chosen: each pulls its engine."""

from __future__ import annotations

from llenergymeasure.backends.base import BackendAdapter


class BackendUnavailable(RuntimeError):
    """The configured backend has no adapter in this runner."""


def get_backend(name: str) -> BackendAdapter:
    if name == "pytorch":
        from llenergymeasure.backends.pytorch import PyTorchBackend

        return PyTorchBackend()
    if name == "vllm":
        from llenergymeasure.backends.vllm import VLLMBackend

        return VLLMBackend()
    if name == "tensorrt":
        from llenergymeasure.backends.tensorrt import TensorRTBackend

        return TensorRTBackend()
    raise BackendUnavailable(f"unknown backend '{name}'; known: pytorch, vllm, tensorrt")
