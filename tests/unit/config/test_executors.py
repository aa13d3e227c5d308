"""`execution.executor` is one executor's settings, told apart by `kind`: the grammar users
write (`executor: slurm` + a `slurm:` section), the inline form, `--executor`, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.config.executors import LocalSettings, SlurmSettings
from llenergymeasure.config.loader import load_study
from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.errors import UserError


def test_a_section_named_after_the_executor_holds_its_settings():
    execution = ExecutionConfig.model_validate(
        {"executor": "slurm", "slurm": {"partition": "gpu", "max_attempts": 2}}
    )
    assert isinstance(execution.executor, SlurmSettings)
    assert (execution.executor.partition, execution.executor.max_attempts) == ("gpu", 2)
    inline = ExecutionConfig.model_validate({"executor": {"kind": "slurm", "partition": "gpu"}})
    assert inline.executor.partition == "gpu"  # type: ignore[union-attr]
    again = ExecutionConfig.model_validate(execution.model_dump())
    assert again.model_dump() == execution.model_dump()


def test_a_local_study_carries_no_slurm_settings_and_executor_switches_keep_them():
    execution = ExecutionConfig.model_validate({"slurm": {"partition": "gpu"}})
    assert isinstance(execution.executor, LocalSettings)
    assert "slurm" not in execution.model_dump() and "partition" not in str(execution.model_dump())
    switched = execution.with_executor("slurm")
    assert isinstance(switched.executor, SlurmSettings) and switched.executor.partition == "gpu"
    assert isinstance(switched.with_executor("local").executor, LocalSettings)


def test_unknown_executors_and_settings_are_named(tmp_path: Path):
    with pytest.raises(UserError, match="not an executor"):
        ExecutionConfig().with_executor("kubernetes")
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\nmodel: m\nexecution:\n  executor: slurm\n  slurm:\n    partitoin: g\n"
    )
    with pytest.raises(
        UserError,
        match=r"s\.yaml:6: execution\.slurm\.partitoin: unknown key.*"
        r"did you mean 'partition'",
    ):
        load_study(study)
    study.write_text("name: s\nmodel: m\nexecution: {executor: kubernetes}\n")
    with pytest.raises(UserError, match=r"s\.yaml:3: execution\.executor"):
        load_study(study)


def test_without_gaps_turns_off_gaps_and_cool_down_only():
    execution = ExecutionConfig.model_validate(
        {"gap_between_experiments_s": 30, "cooldown_to_temp_c": 50, "n_cycles": 3}
    )
    quiet = execution.without_gaps()
    assert (quiet.gap_between_experiments_s, quiet.gap_between_cycles_s) == (0, 0)
    assert quiet.cooldown_to_temp_c is None and quiet.n_cycles == 3
