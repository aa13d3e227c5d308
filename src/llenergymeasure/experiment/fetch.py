"""Find (or download) the hub repositories of `fetch.json`; answer in `fetched.json`.

Two callers, one code: `llem-experiment /llem/work --fetch` in the study's own image looks in
the caches only (no network, no token, every cache read-only); `python3 -m
llenergymeasure.experiment.fetch /llem/work` in llem's own fetch image (`imagebuild/
fetch_image.py`) downloads what is missing, with a network, into the folders of llem's cache
that the host mounted writable for this fetch (one per repository).

For each item, in this order: the user's Hugging Face cache (mounted read-only), llem's own
cache, and, where the request is online, a download into llem's own (the only place a fetch
writes). A snapshot counts as present when it is complete enough to load: a model's
`config.json` and all its weight shards (every shard its index names, or at least one weight
file), a dataset's files. The answer names each snapshot's folder relative to its cache and its
commit, or why it could not be had, and whether the hub refused it for want of a token (the
host then asks again with the token, for that item alone).

While it downloads it appends a `batch` event to `progress.jsonl` each time the bytes under
llem's cache grow: the host's stall check ends a fetch that downloaded nothing for a while.

Downloads skip weight formats no backend of llem loads (Flax, TensorFlow, ONNX, GGUF, Core ML,
the `original/` checkpoints some repositories carry beside their Transformers weights).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from llenergymeasure.contract.hub import (
    FETCH_REQUEST_FILE,
    FETCHED_FILE,
    LLEM_HUB_DIR,
    USER_HUB_DIR,
    FetchedItem,
    FetchReport,
    FetchRequest,
    HubItem,
)
from llenergymeasure.contract.workdir import (
    CONTAINER_WORKDIR,
    ProgressEvent,
    WorkPaths,
    append_jsonl,
    atomic_write_json,
)

IGNORED = [
    "*.msgpack",
    "*.h5",
    "*.ot",
    "*.onnx",
    "*.onnx_data",
    "onnx/*",
    "*.gguf",
    "*.tflite",
    "*.mlmodel",
    "*.mlpackage/*",
    "coreml/*",
    "original/*",
]
WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
BYTES_POLL_S = 1.0


def complete(folder: Path, repo_type: str) -> bool:
    """Whether a snapshot holds what loading it needs (a link to a missing blob is missing)."""
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    if repo_type == "dataset":
        return bool(files)
    if "config.json" not in files:
        return False
    for index in SHARD_INDEXES:
        if index in files:
            shards = json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"]
            return all(shard in files for shard in set(shards.values()))
    return any(name.endswith(WEIGHTS) for name in files)


def _snapshot(item: HubItem, cache: str, *, download: bool) -> Path:
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        item.repo_id,
        revision=item.revision,
        repo_type=item.repo_type,
        cache_dir=cache,
        local_files_only=not download,
        # Looked up with the same patterns it was downloaded with: the hub client checks a cached
        # snapshot against its file listing, and the ignored files are never there.
        ignore_patterns=IGNORED if item.repo_type == "model" else None,
    )
    return Path(folder)


def _found(item: HubItem, cache: str, name: str, downloaded: bool = False) -> FetchedItem | None:
    try:
        folder = _snapshot(item, cache, download=downloaded)
    except Exception:
        if downloaded:
            raise
        return None
    if not complete(folder, item.repo_type):
        return None
    return FetchedItem(
        item=item,
        cache=name,  # type: ignore[arg-type]
        path=os.path.relpath(folder, cache),
        commit=folder.name,
        downloaded=downloaded,
    )


def fetch_one(item: HubItem, online: bool) -> FetchedItem:
    for cache, name in ((USER_HUB_DIR, "user"), (LLEM_HUB_DIR, "llem")):
        if Path(cache).is_dir():
            found = _found(item, cache, name)
            if found is not None:
                return found
    if not online:
        return FetchedItem(
            item=item,
            cache=None,
            problem="not in the Hugging Face cache, and the study is offline",
        )
    try:
        found = _found(item, LLEM_HUB_DIR, "llem", downloaded=True)
    except Exception as error:
        return FetchedItem(item=item, cache=None, problem=_why(error), needs_token=_refused(error))
    if found is None:
        return FetchedItem(item=item, cache=None, problem="downloaded, but incomplete")
    return found


def _refused(error: Exception) -> bool:
    """The hub's answer to a request without a token for a gated or private repository (it
    names a private one absent; GatedRepoError is a kind of RepositoryNotFoundError)."""
    return any(kind.__name__ == "RepositoryNotFoundError" for kind in type(error).__mro__)


def _why(error: Exception) -> str:
    name = type(error).__name__
    if name == "GatedRepoError":
        return "a gated repository: accept its terms on the hub and set HF_TOKEN"
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        return f"not found on the hub ({name}; a private one needs HF_TOKEN)"
    text = " ".join(str(error).split())
    return f"download failed: {name}: {text[:300]}"


def cache_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (links not followed): what downloads have written."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # renamed or removed since the listing
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def report_bytes(
    progress: Path, folder: Path, done: threading.Event, request: FetchRequest
) -> None:
    """Until `done`: a `batch` event each time the bytes under `folder` grew since the last
    poll (what the host's stall check reads; the first counts what was there). And the
    fetch's own limits, which hold when no host watches it any more (its llem was killed -9):
    no byte written for `request.stall_s`, or `request.deadline_s` since it started, ends
    this process (exit 124; the container with it, as its first process)."""
    started = grew_at = time.monotonic()
    last = 0
    while not done.wait(BYTES_POLL_S):
        now = cache_bytes(folder)
        if now > last:
            append_jsonl(progress, ProgressEvent(event="batch", detail=f"{now} bytes in cache"))
            last, grew_at = now, time.monotonic()
        why = _past_limit(time.monotonic(), started, grew_at, request)
        if why is not None:
            print(f"llem fetch: {why}; ended", file=sys.stderr, flush=True)
            os._exit(FETCH_ENDED_ITSELF)


FETCH_ENDED_ITSELF = 124


def _past_limit(now: float, started: float, grew_at: float, request: FetchRequest) -> str | None:
    if request.stall_s is not None and now - grew_at > request.stall_s:
        return f"no byte downloaded for {request.stall_s:g} s"
    if request.deadline_s is not None and now - started > request.deadline_s:
        return f"past its {request.deadline_s:g} s deadline"
    return None


def fetch(workdir: Path) -> int:
    request = FetchRequest.model_validate_json(
        (workdir / FETCH_REQUEST_FILE).read_text(encoding="utf-8")
    )
    progress = workdir / WorkPaths.PROGRESS
    append_jsonl(progress, ProgressEvent(event="started"))
    done = threading.Event()
    if request.online:
        watch = (progress, Path(LLEM_HUB_DIR), done, request)
        threading.Thread(target=report_bytes, args=watch, daemon=True).start()
    try:
        report = FetchReport(items=[fetch_one(item, request.online) for item in request.items])
    finally:
        done.set()
    atomic_write_json(workdir / FETCHED_FILE, report)
    append_jsonl(progress, ProgressEvent(event="finished"))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The fetch image's entrypoint: `python3 -m llenergymeasure.experiment.fetch WORKDIR`."""
    args = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return fetch(Path(args[0]) if args else Path(CONTAINER_WORKDIR))


if __name__ == "__main__":
    sys.exit(main())
