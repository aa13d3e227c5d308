"""This machine: what a run needs from the host it executes on, and the one per-run host
lifecycle (`lifecycle.py`) that the local executor and every cluster node call: the host locks,
the GPUs (identity, processes, settings and their host-wide ledger), the container engine and
one container's life, the container's user and limits, caches, hub snapshots, images, the gap
and cool-down before a run, and signals."""
