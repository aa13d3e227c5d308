"""Energy meters (container side): the GPUs' counters and sampler, RAPL, and their arithmetic."""
