"""A search on the real CPU image: two trials in flight, `kill -9` of llem in the middle, then
`--resume` finishes it within its budget without running a completed trial again."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import docker
import pytest
from ruamel.yaml import YAML

from helpers.integration import LLEM, llem, study_dirs, tiny_cpu_study
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker

TRIALS = 5
CONFIRM = {"top": 1, "cycles": 2}


def _search_study(folder: Path, client: docker.DockerClient) -> Path:
    path = tiny_cpu_study(folder, client, [1], max_parallel=2)
    yaml = YAML()
    study = yaml.load(path.read_text())
    del study["sweep"]
    study["search"] = {
        "objective": {"maximize": "throughput.output_tokens_per_s"},
        "constraints": ["latency.request_ms.p50 <= 600000"],
        "space": {"pytorch.batch_size": [1, 2], "max_new_tokens": {"low": 2, "high": 6}},
        "trials": TRIALS,
        "seed": 7,
        "confirm": CONFIRM,
    }
    with open(path, "w") as handle:
        yaml.dump(study, handle)
    return path


def _completed_trials(folder: Path) -> int:
    dirs = study_dirs(folder)
    if not dirs or not (dirs[0] / "manifest.jsonl").exists():
        return 0
    try:
        record = load_manifest(dirs[0])
    except ValueError:
        return 0
    return sum(r.status == "completed" for r in record.runs.values())


def test_a_search_killed_and_resumed_stays_within_its_budget(tmp_path, client) -> None:
    study = _search_study(tmp_path, client)
    planned = llem("plan", str(study), cwd=tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"at most {TRIALS + CONFIRM['top'] * CONFIRM['cycles']} runs" in planned.stdout

    proc = subprocess.Popen(
        [LLEM, "run", str(study)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while _completed_trials(tmp_path) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the search ended before it could be killed"
    proc.kill()  # kill -9: no handler runs
    proc.wait()
    (study_dir,) = study_dirs(tmp_path)
    before = load_manifest(study_dir)
    done_before = {r.run_id for r in before.runs.values() if r.status == "completed"}
    assert 2 <= len(done_before) < TRIALS

    final = llem("run", str(study), "--resume", cwd=tmp_path, timeout=600)
    assert final.returncode == 0, final.stdout + final.stderr
    (study_dir,) = study_dirs(tmp_path)  # the same folder
    record = load_manifest(study_dir)
    assert record.status == "completed" and record.search is not None
    for run_id in done_before:  # a completed trial never ran again
        assert record.runs[run_id].attempts == 1
    own = [t for t in record.search.trials if t.run_id and not t.reused and not t.rejected]
    assert len({t.config_hash for t in own}) <= TRIALS
    assert len(record.search.confirms) == CONFIRM["top"] * CONFIRM["cycles"]
    assert all(r.status == "completed" for r in record.runs.values())
    assert record.search.stopped[0].startswith(("trials:", "every one"))

    shown = llem("results", "show", str(study_dir), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    best = json.loads(shown.stdout)["search"]["best"]
    if best is not None:  # no winner only where the confirmation could not set one apart
        assert best["confirmed"] and best["objectives"][0]["n"] == CONFIRM["cycles"]
    assert (study_dir / "trials.csv").is_file()
    assert client.containers.list(all=True, filters={"label": "llem.owner_pid"}) == []
