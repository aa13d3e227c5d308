"""Slurm's output parsed: squeue's and sacct's lines, an array's own record."""

from __future__ import annotations

from llenergymeasure.orchestrator.executors.slurm import commands


def test_squeue_lines_one_per_task_pending_and_ended():
    text = "41|0|RUNNING|node7|llem.s.b0001\n41|1|PENDING||llem.s.b0001\n39|N/A|COMPLETED|n|x\n"
    tasks = commands.parse_squeue(text)
    assert [(t.job_id, t.state, t.node, t.ended) for t in tasks] == [
        ("41_0", "RUNNING", "node7", False),
        ("41_1", "PENDING", None, False),
        ("39", "COMPLETED", "n", True),  # a plain job: its own record
    ]


def test_sacct_lines_with_exit_codes_and_never_started_ranges():
    text = (
        "28_0|llem.s.b0001|CANCELLED by 0|0:15|vm\n"
        "28_[0-2,5%2]|llem.s.b0001|CANCELLED by 0|0:0|None assigned\n"
        "30_1|llem.s.b0002|OUT_OF_MEMORY|0:125|vm\n"
        "31_0|llem.s.b0003|FAILED|7:0|vm\n"
    )
    tasks = {t.job_id: t for t in commands.parse_sacct(text)}
    assert sorted(tasks) == ["28_0", "28_1", "28_2", "28_5", "30_1", "31_0"]
    assert tasks["28_0"].node == "vm" and tasks["28_0"].signal == 15  # its own line wins
    assert tasks["28_1"].state == "CANCELLED" and tasks["28_1"].node is None
    assert tasks["31_0"].exit_code == 7 and tasks["31_0"].ended
    assert commands.task_indices("[3-4%1]") == [3, 4] and commands.task_indices("9") == [9]


def test_an_arrays_own_record_stands_for_tasks_cancelled_before_they_started():
    # seen on Slurm 22.05: pending tasks cancelled together keep no record of their own
    queued = commands.parse_squeue("28|N/A|CANCELLED||ccx\n28|0|CANCELLED|vm|ccx\n")
    assert [(t.job_id, t.index, t.state) for t in queued] == [
        ("28", commands.REST, "CANCELLED"),
        ("28_0", 0, "CANCELLED"),
    ]
    accounted = commands.parse_sacct(
        "28_0|ccx|CANCELLED by 0|0:15|vm\n28|ccx|CANCELLED by 0|0:0|\n"
    )
    assert {t.job_id: t.state for t in accounted} == {"28_0": "CANCELLED", "28": "CANCELLED"}
