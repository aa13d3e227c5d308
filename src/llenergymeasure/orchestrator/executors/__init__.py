"""Where a run executes: the executor seam (`base.py`: what the scheduler hands an executor and
what it hands back), one package or module per kind (`local.py`, `slurm/`), and the one rule
that turns a finished job into the manifest (`collect.py`, `outcome.py`). Executors run each
run through the machine's per-run lifecycle (`machine/lifecycle.py`) and never decide what
runs when."""
