"""`llem-experiment /llem/work --fetch`: find (or download) the hub repositories of `fetch.json`.

For each item, in this order: the user's Hugging Face cache (mounted read-only), llem's own
cache, and, where the study is online, a download into llem's own (the only place a fetch
writes). A snapshot counts as present when it is complete enough to load: a model's
`config.json` and all its weight shards (every shard its index names, or at least one weight
file), a dataset's files. The answer, `fetched.json`, names each snapshot's folder relative to
its cache and its commit, or why it could not be had.

Downloads skip weight formats no backend of llem loads (Flax, TensorFlow, ONNX, GGUF, Core ML,
the `original/` checkpoints some repositories carry beside their Transformers weights).
"""

from __future__ import annotations

import json
import os
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
from llenergymeasure.contract.workdir import atomic_write_json

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
        ignore_patterns=IGNORED if download and item.repo_type == "model" else None,
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
        return FetchedItem(item=item, cache=None, problem=_why(error))
    if found is None:
        return FetchedItem(item=item, cache=None, problem="downloaded, but incomplete")
    return found


def _why(error: Exception) -> str:
    name = type(error).__name__
    if name == "GatedRepoError":
        return "a gated repository: accept its terms on the hub and set HF_TOKEN"
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        return f"not found on the hub ({name}; a private one needs HF_TOKEN)"
    text = " ".join(str(error).split())
    return f"download failed: {name}: {text[:300]}"


def fetch(workdir: Path) -> int:
    request = FetchRequest.model_validate_json(
        (workdir / FETCH_REQUEST_FILE).read_text(encoding="utf-8")
    )
    report = FetchReport(items=[fetch_one(item, request.online) for item in request.items])
    atomic_write_json(workdir / FETCHED_FILE, report)
    return 0
