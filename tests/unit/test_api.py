"""The library's user errors are typed exceptions (never SystemExit), and planning needs no
engine: a study from a file, from a StudyConfig, with the command line's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

import llenergymeasure
from llenergymeasure.config.study import StudyConfig


def _study_file(folder: Path, text: str) -> Path:
    path = folder / "s.yaml"
    path.write_text(text)
    return path


def test_a_bad_study_file_raises_user_error_with_its_line(tmp_path: Path) -> None:
    path = _study_file(tmp_path, "name: s\nmodel: stub:m\nn_promts: 3\n")
    with pytest.raises(llenergymeasure.UserError, match=r"s\.yaml:3: .*n_promts"):
        llenergymeasure.run_study(path)
    with pytest.raises(llenergymeasure.UserError):
        llenergymeasure.validate(path)


def test_wrong_options_raise_user_error_before_anything_runs(tmp_path: Path) -> None:
    path = _study_file(tmp_path, "name: s\nmodel: stub:m\n")
    with pytest.raises(llenergymeasure.UserError, match="not an executor"):
        llenergymeasure.run_study(path, executor="kubernetes")
    with pytest.raises(llenergymeasure.UserError, match="goes with resume"):
        llenergymeasure.run_study(path, retry_failed=True)
    with pytest.raises(llenergymeasure.UserError, match="--detach goes with"):
        llenergymeasure.run_study(path, detach=True)
    with pytest.raises(llenergymeasure.UserError, match="not an order"):
        llenergymeasure.plan_study(path, order="random")
    assert not (tmp_path / "llem-results").exists()


def test_plan_study_applies_overrides_and_takes_a_config(tmp_path: Path) -> None:
    path = _study_file(
        tmp_path, "name: s\nmodel: stub:m\nsweep: {n_prompts: [1, 2]}\nexecution: {n_cycles: 2}\n"
    )
    planned = llenergymeasure.plan_study(path, cycles=3, no_gaps=True)
    assert len(planned.plan.runs) == 6
    assert planned.study.execution.gap_between_experiments_s == 0
    config = StudyConfig.model_validate({"name": "p", "defaults": {"model": "stub:m"}})
    from_python = llenergymeasure.plan_study(config)
    assert len(from_python.plan.runs) == 1 and from_python.path.parent == Path.cwd()
    assert llenergymeasure.validate(config) is config
