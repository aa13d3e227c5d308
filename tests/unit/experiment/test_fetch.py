"""The fetch module: what it finds in a hub cache, when it asks for a token, and the byte count
the host's stall check reads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx2
import pytest
from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from llenergymeasure.contract.hub import FetchRequest, HubItem
from llenergymeasure.contract.workdir import WorkPaths
from llenergymeasure.experiment import fetch
from llenergymeasure.study.work_files import read_progress

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_snapshot_downloaded_without_the_formats_llem_skips_is_found_again(
    tmp_path: Path,
) -> None:
    """The hub client lists every file of the commit beside the snapshot; the lookup skips the
    same formats the download did, so the listing's Flax file does not make it incomplete."""
    repo = tmp_path / "models--org--m"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    files = {"config.json": b"{}", "model.safetensors": b"w" * 8, "flax_model.msgpack": b"f"}
    for name, data in files.items():
        if name != "flax_model.msgpack":  # skipped by the download (fetch.IGNORED)
            (snapshot / name).write_bytes(data)
    entries = {
        name: TreeCacheEntry(size=len(data), blob_id="0" * 40) for name, data in files.items()
    }
    write_tree_cache(str(repo), COMMIT, entries)
    found = fetch._found(HubItem(repo_id="org/m"), str(tmp_path), "llem")
    assert found is not None
    assert found.path == f"models--org--m/snapshots/{COMMIT}" and found.commit == COMMIT


def _refusal(kind: type[Exception], status: int) -> Exception:
    response = httpx2.Response(status, request=httpx2.Request("GET", "https://hub.example/api"))
    return kind("refused", response=response)  # type: ignore[call-arg]


def test_only_a_gated_private_or_unknown_repository_asks_for_the_token() -> None:
    assert fetch._refused(_refusal(GatedRepoError, 401))
    assert fetch._refused(_refusal(RepositoryNotFoundError, 401))
    assert not fetch._refused(_refusal(RevisionNotFoundError, 404))
    assert not fetch._refused(OSError("connection refused"))


def test_bytes_written_under_the_cache_are_progress_events(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "blobs").mkdir(parents=True)
    progress = tmp_path / WorkPaths.PROGRESS
    done = threading.Event()
    request = FetchRequest(items=[], online=True)
    watch = threading.Thread(target=fetch.report_bytes, args=(progress, cache, done, request))
    watch.start()
    try:
        (cache / "blobs" / "x.incomplete").write_bytes(b"b" * 1000)
        deadline = time.time() + 5 * fetch.BYTES_POLL_S
        while not progress.exists() and time.time() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        watch.join()
    events = read_progress(progress)
    assert {e.event for e in events} == {"batch"} and events[-1].detail == "1000 bytes in cache"


@pytest.mark.parametrize(
    ("limits", "why"),
    [({"stall_s": 1.5}, "no byte downloaded for 1.5 s"), ({"deadline_s": 1.5}, "deadline")],
)
def test_a_download_nobody_watches_ends_itself_at_its_own_limits(
    tmp_path: Path, limits: dict[str, float], why: str
) -> None:
    """The fetch's own stall and deadline hold when its llem is gone (killed -9): the process
    ends (exit 124), so its container, which holds the network and maybe a token, ends too."""
    import subprocess
    import sys

    cache = tmp_path / "cache"
    cache.mkdir()
    request = FetchRequest(items=[], online=True, **limits)
    script = (
        "import sys, threading; from pathlib import Path; "
        "from llenergymeasure.contract.hub import FetchRequest; "
        "from llenergymeasure.experiment import fetch; "
        "request = FetchRequest.model_validate_json(sys.argv[3]); "
        "fetch.report_bytes(Path(sys.argv[1]), Path(sys.argv[2]), threading.Event(), request)"
    )
    args = [sys.executable, "-c", script, str(tmp_path / "progress.jsonl"), str(cache)]
    started = time.monotonic()
    done = subprocess.run(
        [*args, request.model_dump_json()], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == fetch.FETCH_ENDED_ITSELF and why in done.stderr
    assert time.monotonic() - started < 1.5 + 3 * fetch.BYTES_POLL_S + 5


@pytest.mark.parametrize("online", [False, True])
def test_a_fetch_says_it_started_and_finished(tmp_path: Path, online: bool) -> None:
    (tmp_path / "fetch.json").write_text(FetchRequest(items=[], online=online).model_dump_json())
    assert fetch.main([str(tmp_path)]) == 0
    assert [e.event for e in read_progress(tmp_path / WorkPaths.PROGRESS)] == [
        "started",
        "finished",
    ]
    assert (tmp_path / "fetched.json").is_file()
