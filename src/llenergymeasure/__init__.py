"""llenergymeasure: energy, throughput and latency of LLM inference, measured in a fresh
container per experiment."""

__version__ = "0.1.0"
