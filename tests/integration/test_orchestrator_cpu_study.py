"""The happy path: a 3-run study on the real CPU image, real runner, tiny offline model."""

from __future__ import annotations

import subprocess

import pytest

from conftest import CPU_IMAGE, llem, study_dirs, write_study
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_three_run_study_end_to_end(tmp_path, client):
    if not client.images.list(name="llenergymeasure/cpu"):
        pytest.fail("llenergymeasure/cpu is missing: run `llem images build cpu`")
    subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-e",
            "HOME=/tmp",
            "-v",
            f"{tmp_path}:/out",
            "--entrypoint",
            "python3",
            CPU_IMAGE,
            "-m",
            "llenergymeasure.runner_entry.tiny_model",
            "/out/model",
        ],
        check=True,
        capture_output=True,
    )
    study = write_study(
        tmp_path,
        ["model"],
        image=CPU_IMAGE,
        n_prompts=2,
        max_input_tokens=32,
        max_new_tokens=4,
        prompts={"source": "synthetic", "input_length": {"distribution": "fixed", "tokens": 8}},
        warmup={"min_batches": 1, "max_batches": 1},
        baseline={"enabled": False},
        min_window_s=0.1,
        sweep={"pytorch.batch_size": [1, 2, 4]},
        execution={"experiment_timeout_s": 240},
    )
    proc = llem("run", str(study), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    assert record.status == "completed" and len(record.runs) == 3
    for run in record.runs.values():
        assert run.status == "completed" and run.image_id
        result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
        assert result.context.run_id == run.run_id
        assert result.config.model.startswith("/llem/models/")  # local folder mounted read-only
        assert result.tokens.output_tokens > 0
