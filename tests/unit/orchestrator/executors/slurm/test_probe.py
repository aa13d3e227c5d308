"""The shared-path probe: one short task on the study's partition."""

from __future__ import annotations

from llenergymeasure.config.executors import SlurmSettings
from llenergymeasure.orchestrator.executors.slurm.probe import probe_args


def test_probe_runs_one_short_task_on_the_partition():
    args = probe_args(SlurmSettings(partition="p", account="a"), ["/x", "/y"])
    assert args[:2] == ["srun", "--quiet"] and "--partition=p" in args and "--account=a" in args
    assert args[-2:] == ["/x", "/y"] and "--exclusive" not in args
