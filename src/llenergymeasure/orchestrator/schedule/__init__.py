"""What runs when: `llem run` after planning (`study_run.py`), its pre-flight, the study folder
it opens, and the scheduler, which owns the manifest, the stop state and the display and places
the runs a source plans (a grid: `sources.py`; a search: `search/`) onto an executor's slots.
It never touches a GPU: the machine under a run is `machine/`'s."""
