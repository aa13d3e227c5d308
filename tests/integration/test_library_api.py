"""The Python library end to end on the real CPU image: `run_study` from a file and from a
StudyConfig, twice in one process, in a worker thread stopped on request; `load_results`,
`plan_study`, `validate`; and `--no-gaps` on the command line."""

from __future__ import annotations

import signal
import threading
import time

import pytest

import llenergymeasure
from helpers.integration import llem, study_dirs, tiny_cpu_study, write_study
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.orchestrator.machine.stop import EXIT_INTERRUPTED, StopState
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.manifest import load_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_run_study_from_a_file_then_from_a_config_in_one_process(tmp_path, client):
    study = tiny_cpu_study(tmp_path, client, [1, 2])
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    result = llenergymeasure.run_study(study, quiet=True)

    assert (result.exit_code, result.status, result.failures) == (0, "completed", [])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert len(result.runs) == 2 and set(result.runs["outcome"]) == {"completed"}
    assert sorted(result.runs["pytorch.batch_size"]) == [1, 2]
    assert len(result.configurations) == 2
    assert result.runs["energy.j_per_output_token"].isna().all()  # no GPU: null, never 0
    loaded = llenergymeasure.load_results(result.study_dir)
    assert loaded.runs["run_id"].tolist() == result.runs["run_id"].tolist()

    # the same study built in Python (relative paths resolve from the working folder)
    config = llenergymeasure.validate(study)
    document = config.as_document()
    document["name"] = "from-python"
    document["model"] = str(tmp_path / "model")
    document["output_dir"] = str(tmp_path / "out")
    built = StudyConfig.model_validate(
        {
            **{k: document[k] for k in ("name", "output_dir", "offline", "images", "execution")},
            "defaults": {k: v for k, v in document.items() if k not in StudyConfig.model_fields},
            "sweep": {"pytorch.batch_size": [4]},
        }
    )
    planned = llenergymeasure.plan_study(built)
    assert len(planned.plan.runs) == 1
    again = llenergymeasure.run_study(planned, quiet=True)
    assert (again.exit_code, again.status) == (0, "completed")
    assert again.study_dir != result.study_dir
    # its folder's study.yaml says the study as a file would: it plans the same run
    copy = StudyPaths(again.study_dir) / StudyPaths.STUDY
    replanned = llenergymeasure.plan_study(copy)
    assert [r.config_hash for r in replanned.plan.runs] == [
        r.config_hash for r in planned.plan.runs
    ]


def test_run_study_in_a_worker_thread_stops_when_asked(tmp_path, fault_image):
    study = write_study(tmp_path, ["fault:hang"], execution={"experiment_timeout_s": 120})
    stop = StopState()
    outcome: dict[str, object] = {}

    def work() -> None:
        outcome["result"] = llenergymeasure.run_study(study, quiet=True, stop=stop)

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dirs = study_dirs(tmp_path)
        if dirs and any(r.status == "running" for r in load_manifest(dirs[0]).runs.values()):
            break
        time.sleep(0.2)
    stop.request()
    worker.join(timeout=60)
    assert not worker.is_alive()
    result = outcome["result"]
    assert isinstance(result, llenergymeasure.StudyResult)
    assert (result.exit_code, result.status) == (EXIT_INTERRUPTED, "interrupted")
    assert [r.outcome for r in result.failures] == ["interrupted"]


def test_no_gaps_runs_back_to_back_and_the_manifest_says_so(tmp_path, fault_image):
    study = write_study(
        tmp_path,
        ["fault:ok-1", "fault:ok-1"],
        execution={"gap_between_experiments_s": 600, "gap_between_cycles_s": 600},
    )
    started = time.monotonic()
    proc = llem("run", str(study), "--no-gaps", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert time.monotonic() - started < 300  # not the 600 s gap
    assert "--no-gaps" in proc.stdout
    (study_dir,) = study_dirs(tmp_path)
    runs = load_manifest(study_dir).runs.values()
    assert [r.status for r in runs] == ["completed"] * 2 and all(r.no_gaps for r in runs)
