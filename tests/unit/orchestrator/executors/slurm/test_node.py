"""What the node reads from its environment."""

from __future__ import annotations

from llenergymeasure.orchestrator.executors.slurm.node import allocated_gpus


def test_the_node_reads_its_gpus_from_slurm(monkeypatch):
    for name in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    assert allocated_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")  # UUIDs: not indices
    assert allocated_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("SLURM_JOB_GPUS", "2,5")
    assert allocated_gpus() == [2, 5]  # the node's numbering wins
