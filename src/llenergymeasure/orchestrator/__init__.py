"""The host side of a study, in three parts named by the question each answers:

- `schedule/`: what runs when (pre-flight, the study folder, the scheduler and its run
  sources: a grid or a search);
- `executors/`: where a run executes (the executor seam, local and Slurm, and how a finished
  job becomes a manifest record);
- `machine/`: this machine (locks, GPUs and their settings, the container engine, one
  container's life, the per-run host lifecycle).

`planned.py` (a planned study), `layout.py` (where study folders go) and `display.py` (what
llem says) are shared by all three. A part imports only from those below it (import-linter).
"""
