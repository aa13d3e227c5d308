"""Models named by hub id, on the real CPU image: the pre-flight's fetch container finds them in
the user's Hugging Face cache (laid out here as the hub client lays it out: blobs, snapshots of
links, refs), each experiment gets that snapshot read-only with no network and no token, the
user's cache is never changed, and a model no cache holds is one message before anything is
written. (Downloads need the hub, which this machine cannot reach: the download path is the
hub client's own `snapshot_download`; what llem adds around it is tested here.)"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers.integration import (
    CPU_IMAGE,
    LLEM,
    TINY_WORKLOAD,
    llem,
    make_tiny_model,
    study_dirs,
    write_study,
)
from llenergymeasure.contract.hub import USER_HUB_DIR
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker

SECRET = "hf_llemHubSecret0123456789"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(tmp_path: Path, repo_id: str) -> Path:
    """The tiny model as `huggingface_hub` caches it: `models--org--name/{blobs,snapshots,refs}`."""
    model = make_tiny_model(tmp_path)
    hub = tmp_path / "hf" / "hub"
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for path in model.iterdir():
        data = path.read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / path.name).symlink_to(f"../../blobs/{blob}")
    return hub


def _owners_and_times(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.lstat().st_uid, p.lstat().st_mtime) for p in folder.rglob("*")}


def _env(tmp_path: Path, hub: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_CACHE": str(hub),
        "HF_TOKEN": SECRET,
        "LLEM_CACHE_DIR": str(tmp_path / "llem-cache"),
    }


def test_a_hub_model_in_the_users_cache_runs_read_only_offline_and_without_the_token(
    tmp_path, client
):
    hub = _hub_cache(tmp_path, "llem/tiny")
    before = _owners_and_times(hub)
    study = write_study(
        tmp_path,
        ["llem/tiny"],
        image=CPU_IMAGE,
        offline=False,  # online: the fetch container may use the network; experiments never
        **TINY_WORKLOAD,
        baseline={"duration_s": 2},
        min_window_s=0.5,
        execution={"experiment_timeout_s": 240},
    )
    with subprocess.Popen(
        [LLEM, "run", str(study)],
        cwd=tmp_path,
        env=_env(tmp_path, hub),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        attrs = None
        deadline = time.time() + 180
        while attrs is None and time.time() < deadline and proc.poll() is None:
            for container in client.containers.list(filters={"label": "llem.run"}):
                attrs = container.attrs
            time.sleep(0.2)
        output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    assert "model:llem/tiny@main: found in your Hugging Face cache, commit" in output
    assert attrs is not None, "no experiment container was seen"
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert not any(
        e.startswith(("HF_TOKEN=", "HUGGING_FACE_HUB_TOKEN=")) for e in attrs["Config"]["Env"]
    )
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts[USER_HUB_DIR]["Source"] == str(hub) and mounts[USER_HUB_DIR]["RW"] is False
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    result = ExperimentResult.model_validate_json((study_dir / run.result_path).read_text())
    assert result.config.model == f"{USER_HUB_DIR}/models--llem--tiny/snapshots/{COMMIT}"
    assert result.context.hub_commits == {"model:llem/tiny@main": COMMIT}
    assert _owners_and_times(hub) == before  # never chowned, never written
    for folder in (study_dir, tmp_path / "llem-cache"):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert SECRET.encode() not in path.read_bytes(), f"the token is in {path}"
    assert SECRET not in output


def test_a_hub_model_no_cache_holds_is_one_message_before_anything_is_written(tmp_path, client):
    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    study = write_study(tmp_path, ["llem/absent"], image=CPU_IMAGE, offline=True, **TINY_WORKLOAD)
    proc = llem("run", str(study), cwd=tmp_path, env=_env(tmp_path, hub), timeout=180)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model:llem/absent@main: not in the Hugging Face cache, and the study is offline" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert study_dirs(tmp_path) == []


def test_a_hub_snapshot_folder_given_as_model_runs_with_its_links(tmp_path, client):
    hub = _hub_cache(tmp_path, "llem/tiny")
    snapshot = hub / "models--llem--tiny" / "snapshots" / COMMIT
    study = write_study(
        tmp_path,
        [str(snapshot)],
        image=CPU_IMAGE,
        **TINY_WORKLOAD,
        baseline={"enabled": False},
        min_window_s=0.1,
        execution={"experiment_timeout_s": 240},
    )
    proc = llem("run", str(study), cwd=tmp_path, env=_env(tmp_path, hub), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (study_dir,) = study_dirs(tmp_path)
    (run,) = load_manifest(study_dir).runs.values()
    assert run.status == "completed"
