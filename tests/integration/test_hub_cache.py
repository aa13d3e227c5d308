"""Models named by hub id, on the real CPU image. Without a reachable hub, two ways:
- the user's Hugging Face cache laid out here as the hub client lays it out (blobs, snapshots of
  links, refs): the lookup in the study's own image finds it, each experiment gets that
  repository read-only with no network and no token, and the user's cache is never changed;
- a small hub of its own, served here on the engine's bridge (`HF_ENDPOINT`): the download runs
  in llem's own fetch image (never the study's), sees only its repository's folders, gets a
  network, a memory limit and the token only for a repository that refused it without one.
A model no cache holds in an offline study is one message before anything is written."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
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
from llenergymeasure.contract.hub import LLEM_HUB_DIR, USER_HUB_DIR
from llenergymeasure.contract.result import ExperimentResult
from llenergymeasure.orchestrator.machine.hub import FETCH_LABEL, FETCH_MEM_LIMIT
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
            ours = {"label": ["llem.run", f"llem.owner_pid={proc.pid}"]}  # not another test's
            for container in client.containers.list(filters=ours):
                attrs = container.attrs
            time.sleep(0.2)
        output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    assert "model:llem/tiny@main: found in your Hugging Face cache, commit" in output
    assert attrs is not None, "no experiment container was seen"
    assert "hub: downloading" not in output  # found: nothing downloaded, no fetch image used
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert not any(
        e.startswith(("HF_TOKEN=", "HUGGING_FACE_HUB_TOKEN=")) for e in attrs["Config"]["Env"]
    )
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    repository = mounts[f"{USER_HUB_DIR}/models--llem--tiny"]  # that repository, not the cache
    assert repository["Source"] == str(hub / "models--llem--tiny") and repository["RW"] is False
    assert not any(m["Source"] == str(hub) for m in attrs["Mounts"])
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


class FakeHub(ThreadingHTTPServer):
    """The hub endpoints `snapshot_download` calls (revision info, file tree, resolve), serving
    in-memory repositories; a private one answers 401 unless given `Bearer <token>`. Each
    request is recorded with its Authorization header, and, while the first request of a
    download waits here, the running download containers are inspected."""

    daemon_threads = True

    def __init__(self, host: str, client: docker.DockerClient, token: str) -> None:
        super().__init__((host, 0), _HubHandler)
        self.client = client
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {}
        self.private: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization)
        self.downloads: dict[str, dict[str, Any]] = {}  # container id -> attrs

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve(self, repo_id: str, folder: Path, private: bool = False) -> None:
        self.repos[repo_id] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        if private:
            self.private.add(repo_id)

    def inspect_downloads(self) -> None:
        for container in self.client.containers.list(filters={"label": f"{FETCH_LABEL}=download"}):
            self.downloads.setdefault(container.id, container.attrs)


class _HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _send(self, code: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(code)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _answer(self, body: bool) -> None:
        hub = self.server
        path = urlsplit(self.path).path
        auth = self.headers.get("Authorization")
        hub.requests.append((path, auth))
        parts = path.strip("/").split("/")
        api = parts[:2] == ["api", "models"]
        repo, rest = ("/".join(parts[2:4]), parts[4:]) if api else ("/".join(parts[:2]), parts[2:])
        files = hub.repos.get(repo)
        if files is None or (repo in hub.private and auth != f"Bearer {hub.token}"):
            refused = {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"}
            return self._send(401, b'{"error": "Repository not found"}', refused, body)
        if api and rest[:1] == ["revision"]:
            hub.inspect_downloads()  # the container waits for this answer: it is running
            info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
            return self._send(200, json.dumps(info).encode(), {}, body)
        if api and rest[:1] == ["tree"]:
            tree = [
                {
                    "type": "file",
                    "path": name,
                    "size": len(data),
                    "oid": hashlib.sha1(data).hexdigest(),
                }
                for name, data in files.items()
            ]
            return self._send(200, json.dumps(tree).encode(), {}, body)
        if rest[:1] == ["resolve"] and "/".join(rest[2:]) in files:
            data = files["/".join(rest[2:])]
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            return self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": etag}, body)
        self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, body)


@pytest.fixture
def fake_hub(client: docker.DockerClient) -> Iterator[FakeHub]:
    """A hub on the bridge network's gateway: reachable from a container with a network only."""
    ipam = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    gateway = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
    hub = FakeHub(gateway, client, SECRET)
    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    yield hub
    hub.shutdown()
    hub.server_close()


def test_a_missing_model_is_downloaded_by_llems_own_image_and_the_token_only_where_refused(
    tmp_path, client, fake_hub
):
    model = make_tiny_model(tmp_path)
    fake_hub.serve("llem/public", model)
    fake_hub.serve("llem/private", model, private=True)
    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    study = write_study(
        tmp_path,
        ["llem/public", "llem/private"],
        image=CPU_IMAGE,
        offline=False,
        **TINY_WORKLOAD,
        baseline={"enabled": False},
        min_window_s=0.1,
        execution={"experiment_timeout_s": 240},
    )
    env = {**_env(tmp_path, hub), "HF_ENDPOINT": fake_hub.endpoint}
    proc = llem("run", str(study), cwd=tmp_path, env=env, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "with llem's fetch image llenergymeasure/fetch:" in output
    # Without a token first; only the private repository is asked for again, with it.
    with_token = [path for path, auth in fake_hub.requests if auth == f"Bearer {SECRET}"]
    assert with_token and all("llem/private" in path for path in with_token)
    assert all(auth in (None, f"Bearer {SECRET}") for _, auth in fake_hub.requests)
    assert ("/api/models/llem/private/revision/main", None) in fake_hub.requests
    # The download containers: llem's own image, never the study's.
    study_image = client.images.get(CPU_IMAGE).id
    downloads = list(fake_hub.downloads.values())
    assert len(downloads) == 2, "a download without the token, then one with it"
    for attrs in downloads:
        image = client.images.get(attrs["Image"])
        assert attrs["Image"] != study_image
        assert any(tag.startswith("llenergymeasure/fetch:") for tag in image.tags)
        host = attrs["HostConfig"]
        assert host["NetworkMode"] not in ("none", "host")
        assert host["Memory"] == docker.utils.parse_bytes(FETCH_MEM_LIMIT)
        assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
        writable = {m["Destination"] for m in attrs["Mounts"] if m["RW"]}
        assert writable <= {"/llem/work"} | {
            f"{LLEM_HUB_DIR}/{folder}"
            for name in ("public", "private")
            for folder in (f"models--llem--{name}", f".locks/models--llem--{name}")
        }
        assert not any(m["Destination"] in (USER_HUB_DIR, LLEM_HUB_DIR) for m in attrs["Mounts"])
    tokens = [any(e.startswith("HF_TOKEN=") for e in attrs["Config"]["Env"]) for attrs in downloads]
    assert sorted(tokens) == [False, True]
    # The runs used the downloaded snapshots, read-only; the cache is llem's again.
    (study_dir,) = study_dirs(tmp_path)
    records = load_manifest(study_dir).runs.values()
    assert {r.status for r in records} == {"completed"}
    llem_hub = tmp_path / "llem-cache" / "hf-hub"
    for name in ("public", "private"):
        repository = llem_hub / f"models--llem--{name}"
        assert (repository / "snapshots" / COMMIT / "config.json").is_file()
        if os.geteuid() == 0:  # handed to the containers' user for the fetch, then taken back
            assert {p.lstat().st_uid for p in (repository, *repository.rglob("*"))} == {0}
    for folder in (study_dir, tmp_path / "llem-cache"):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert SECRET.encode() not in path.read_bytes(), f"the token is in {path}"
    assert SECRET not in output
