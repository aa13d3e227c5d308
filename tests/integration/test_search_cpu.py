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
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker

TRIALS = 5
CONFIRM = {"top": 2, "max_runs": 6}


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


def _race_runs_done(folder: Path) -> int:
    """Race runs completed so far (0 while the manifest is not there or half written)."""
    dirs = study_dirs(folder)
    if not dirs or not (dirs[0] / "manifest.jsonl").exists():
        return 0
    try:
        record = load_manifest(dirs[0])
    except ValueError:
        return 0
    if record.search is None:
        return 0
    raced = {c.run_id for c in record.search.confirms if c.purpose == "race"}
    return sum(record.runs[r].status == "completed" for r in raced if r in record.runs)


def test_a_search_killed_in_its_race_resumes_replaying_its_rounds(tmp_path, client) -> None:
    """kill -9 in the middle of the race (a race run has ended), then --resume: the rounds
    recorded before the kill stand as recorded, no completed run runs again, the race ends
    with a verdict, within the budget."""
    study = _search_study(tmp_path, client)
    planned = llem("plan", str(study), cwd=tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr

    proc = subprocess.Popen(
        [LLEM, "run", str(study)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while _race_runs_done(tmp_path) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before its race could be killed"
    proc.kill()  # kill -9: no handler runs
    proc.wait()
    (study_dir,) = study_dirs(tmp_path)
    before = load_manifest(study_dir)
    assert before.search is not None and before.search.races
    rounds_before = [r.model_dump() for r in before.search.races]
    done_before = {r.run_id for r in before.runs.values() if r.status == "completed"}

    final = llem("run", str(study), "--resume", cwd=tmp_path, timeout=600)
    assert final.returncode == 0, final.stdout + final.stderr
    (study_dir,) = study_dirs(tmp_path)  # the same folder
    record = load_manifest(study_dir)
    assert record.status == "completed" and record.search is not None
    rounds = [r.model_dump() for r in record.search.races]
    assert rounds[: len(rounds_before)] == rounds_before  # replayed exactly
    assert rounds[-1]["ended"] is not None
    for run_id in done_before:  # a completed run never ran again
        assert record.runs[run_id].attempts == 1
    own = [t for t in record.search.trials if t.run_id and not t.reused and not t.rejected]
    assert len({t.config_hash for t in own}) <= TRIALS
    raced = [c for c in record.search.confirms if c.purpose == "race"]
    assert 2 <= len(raced) <= CONFIRM["max_runs"]
    assert all(r.status == "completed" for r in record.runs.values())

    shown = llem("results", "show", str(study_dir), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    search = json.loads(shown.stdout)["search"]
    cell = search["cells"][0]
    assert cell["verdict"]["kind"] in ("winner", "equivalent", "no_clear_winner", "none")
    assert cell["verdict"]["text"] and cell["runs"]["confirmation"] == len(raced)
    # the device time each run held its container, by phase: a CPU study's in run-seconds
    cost = search["cost"]
    assert cost["unit"] == "run-s" and cost["spent"]["confirmation"]["runs"] == len(raced)
    phases = cost["spent"]["search"]["by_phase"]
    assert phases["container"] > 0 and phases["load"] > 0 and phases["window"] > 0
    assert cost["total"] == pytest.approx(sum(s["total"] for s in cost["spent"].values()))
    assert (study_dir / "trials.csv").is_file()
    assert client.containers.list(all=True, filters={"label": "llem.owner_pid"}) == []


def test_a_search_resumed_with_more_trials_continues_in_its_folder(tmp_path, client) -> None:
    """trials 3, then `--resume` with trials 5: the same folder, at most 5 distinct
    configurations run, the budget change recorded, and the cell confirmed again. Its runs
    reuse the idle baseline an earlier run measured (`baseline.reuse_s`): the first measures
    its own, later ones spend no baseline time and name the run they took it from."""
    study = _search_study(tmp_path, client)
    yaml = YAML()

    def with_trials(trials: int) -> None:
        data = yaml.load(study.read_text())
        data["search"]["trials"] = trials
        data["search"]["confirm"] = {"top": 2, "max_runs": 4}
        data["baseline"] = {"enabled": True, "duration_s": 2, "reuse_s": 3600}
        with open(study, "w") as handle:
            yaml.dump(data, handle)

    with_trials(3)
    first = llem("run", str(study), cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    (study_dir,) = study_dirs(tmp_path)
    before = load_manifest(study_dir)
    assert before.search is not None and before.search.stopped[0].startswith("trials: 3")
    done_before = {r.run_id for r in before.runs.values() if r.status == "completed"}

    with_trials(5)
    resumed = llem("run", str(study), "--resume", cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "trials 3 -> 5" in resumed.stdout + resumed.stderr
    assert study_dirs(tmp_path) == [study_dir]  # the same folder
    record = load_manifest(study_dir)
    assert record.search is not None and record.status == "completed"
    own = [t for t in record.search.trials if t.run_id and not t.reused and not t.rejected]
    assert 3 < len({t.config_hash for t in own}) <= 5
    (change,) = record.search.budgets
    assert change.reopened == [0] and change.budget.trials == 5
    assert {r.race for r in record.search.races} == {0, 1}
    for run_id in done_before:  # nothing that ran, ran again
        assert record.runs[run_id].attempts == 1

    shown = llem("results", "show", str(study_dir), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "budget changed on resume" in shown.stdout and "trials 3 -> 5" in shown.stdout
    assert "reused an earlier run's idle baseline" in shown.stdout

    results = [
        ExperimentResult.model_validate_json(path.read_text())
        for path in study_dir.glob("experiments/*/result.json")
    ]
    measured = [r for r in results if r.energy.baseline_reused_from is None]
    reused = [r for r in results if r.energy.baseline_reused_from is not None]
    assert measured and all(r.timings.baseline_s >= 2 for r in measured)
    assert len(reused) >= len(results) // 2 and all(r.timings.baseline_s == 0 for r in reused)
    own = {r.context.run_id for r in measured}
    for r in reused:  # taken from a run that measured its own, on this host, within reuse_s
        assert r.energy.baseline_reused_from.run_id in own
        assert 0 <= r.energy.baseline_reused_from.age_s <= 3600
        assert r.energy.idle_baseline is not None
    spent = json.loads(llem("results", "show", str(study_dir), "--json", cwd=tmp_path).stdout)[
        "search"
    ]["cost"]["spent"]
    assert sum(s["baselines_reused"] for s in spent.values()) == len(reused)


def test_an_offline_trial_that_trails_the_median_is_stopped_mid_window(tmp_path, client) -> None:
    """`search.pruner: median` on the real CPU image: batch size 16 runs the tiny model about
    ten times faster than batch size 1. The random sampler's seed 6 asks batch sizes 1, 1, 16,
    16, 16 first (the random sampler's order depends on its seed alone), so
    once five trials completed the median at each slice is batch 16's, and the next batch-1
    trials are stopped in their window: their containers asked to stop, recorded pruned."""
    study = tiny_cpu_study(tmp_path, client, [1])
    yaml = YAML()
    data = yaml.load(study.read_text())
    del data["sweep"]
    data["n_prompts"] = 16
    data["min_window_s"] = 3
    data["search"] = {
        "objective": {"maximize": "throughput.output_tokens_per_s"},
        "space": {"pytorch.batch_size": [1, 16], "max_new_tokens": {"low": 4, "high": 12}},
        "trials": 7,
        "seed": 6,
        "sampler": "random",
        "confirm": {"top": 0},
        "pruner": "median",
    }
    with open(study, "w") as handle:
        yaml.dump(data, handle)
    ran = llem("run", str(study), cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (study_dir,) = study_dirs(tmp_path)
    record = load_manifest(study_dir)
    assert record.search is not None
    pruned = {r: s for r, s in record.search.slices.items() if s.pruned is not None}
    assert pruned, ran.stdout
    batch_of = {t.run_id: t.params["pytorch.batch_size"] for t in record.search.trials}
    assert {batch_of[r] for r in pruned} == {1}
    for run_id, line in pruned.items():
        run = record.runs[run_id]
        assert run.status == "failed" and run.error_type == "TrialPruned"
        assert max(line.values) < 10  # stopped before its window ended
        assert not (study_dir / "experiments" / run_id / "result.json").exists()
    completed = [r for r in record.runs.values() if r.status == "completed"]
    assert len(completed) >= 5 and all(
        len(record.search.slices[r.run_id].values) == 10 for r in completed
    )
    assert client.containers.list(all=True, filters={"label": "llem.owner_pid"}) == []
    shown = llem("results", "show", str(study_dir), cwd=tmp_path)
    assert "pruned" in shown.stdout, shown.stdout
