"""The names in a study folder, for the host modules that write it and those that read it."""

from __future__ import annotations

STUDY_FILE = "study.yaml"  # the study file as given
# `<stem>.lock.yaml` of STUDY_FILE: what `llem run <study-folder>/study.yaml --locked` reads.
STUDY_LOCK_FILE = "study.lock.yaml"
PLAN_FILE = "plan.json"  # every planned run with its full configuration
EXPERIMENTS_DIR = "experiments"  # one work folder per run under it
