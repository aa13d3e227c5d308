"""Energy meters (container side): NVML counters and sampler, RAPL, and their arithmetic."""
