"""Batches of array tasks: their run lists, sbatch's arguments, the time limit."""

from __future__ import annotations

import sys

import pytest

from llenergymeasure.config.executors import SlurmSettings
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.executors.slurm.batches import (
    Batch,
    existing_batches,
    new_batch,
    sbatch_args,
    time_limit_min,
)
from llenergymeasure.orchestrator.executors.slurm.node import run_id_of_task

RUN_IDS = ["0000_0123abcd_c0", "0001_0123abcd_c1", "0002_4567abcd_c0"]


def test_batches_count_up_and_are_found_again(tmp_path):
    first = new_batch(tmp_path, "s_1", RUN_IDS[:2])
    first.write()
    second = new_batch(tmp_path, "s_1", RUN_IDS[2:])
    second.write()
    assert (first.tag, second.tag) == ("b0001", "b0002")
    assert second.name == "llem.s_1.b0002"
    assert existing_batches(tmp_path, "s_1") == [first, second]
    assert run_id_of_task(first.runs_file, 1) == RUN_IDS[1]
    assert (tmp_path / "slurm").stat().st_mode & 0o777 == 0o700
    assert first.runs_file.stat().st_mode & 0o777 == 0o600


def test_a_run_list_someone_else_could_write_is_not_run(tmp_path):
    batch = new_batch(tmp_path, "s_1", RUN_IDS[:1])
    batch.write()
    batch.runs_file.chmod(0o666)
    with pytest.raises(UserError, match="not a run list llem wrote"):
        run_id_of_task(batch.runs_file, 0)
    assert existing_batches(tmp_path, "s_1") == []
    batch.runs_file.chmod(0o600)
    batch.runs_file.write_text("../../etc\n")
    with pytest.raises(UserError, match="is not a run id"):
        run_id_of_task(batch.runs_file, 0)


def test_sbatch_arguments_carry_every_setting(tmp_path):
    settings = SlurmSettings(
        partition="gpu",
        account="proj",
        qos="high",
        gres="gpu:a100",
        max_concurrent_jobs=4,
        extra_args=["--constraint=h100"],
        llem_command=["/shared/venv/bin/llem"],
    )
    batch = Batch(tmp_path, "s_1", "b0003", ("r0", "r1", "r2"))
    args = sbatch_args(batch, settings, gpu_count=2, minutes=75)
    assert "--job-name=llem.s_1.b0003" in args and "--array=0-2%4" in args
    assert "--time=75" in args and "--no-requeue" in args and "--exclusive" in args
    assert "--gres=gpu:a100:2" in args and "--constraint=h100" in args
    assert {"--partition=gpu", "--account=proj", "--qos=high"} <= set(args)
    assert f"--output={tmp_path}/slurm/b0003_%a.out" in args
    percent = Batch(tmp_path / "100%", "s_1", "b0001", ("r0",))
    assert f"--output={tmp_path}/100%%/slurm/b0001_%a.out" in sbatch_args(
        percent, settings, gpu_count=0, minutes=5
    )
    assert (
        args[-1] == f"--wrap=exec /shared/venv/bin/llem node-run slurm {tmp_path} {batch.runs_file}"
    )
    cpu = sbatch_args(batch, SlurmSettings(exclusive=False), gpu_count=0, minutes=5)
    assert not any(a.startswith(("--gres", "--exclusive", "--partition")) for a in cpu)
    assert cpu[-1].startswith(f"--wrap=exec {sys.executable} -m llenergymeasure node-run ")


def test_time_limit_is_the_runs_need_plus_a_margin_unless_set():
    assert time_limit_min(SlurmSettings(), 3000.0) == 60  # (3000 + 600) / 60
    assert time_limit_min(SlurmSettings(), 1.0) == 11
    assert time_limit_min(SlurmSettings(time_limit_min=7), 3000.0) == 7
