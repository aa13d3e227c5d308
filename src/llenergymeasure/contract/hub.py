"""Models and datasets named by hub id: what the host asks a fetch container for, and what it
answers. A lookup (the study's image, `llem-experiment /llem/work --fetch`, no network) finds
each item in the user's Hugging Face cache or llem's own, both read-only; where the study is
online, llem's own fetch image downloads what is missing into llem's own; measurement
containers then get the snapshot's repository folder, read-only, and never a network or a token.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from llenergymeasure.contract.config import Strict

FETCH_REQUEST_FILE = "fetch.json"
FETCHED_FILE = "fetched.json"

USER_HUB_DIR = "/llem/hf-user"
"""The user's own Hugging Face hub cache, mounted read-only (never the token beside it)."""

LLEM_HUB_DIR = "/llem/hf-llem"
"""llem's own hub cache: written only by llem's fetch image, read-only in experiments."""

# An id on the hub: `name` or `org/name`, no `:`, no path. Anything else is not fetched.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")

# Where a snapshot lies in a hub cache: `models--org--name/snapshots/<commit>`.
SNAPSHOT_PATH = r"^(models|datasets)--[A-Za-z0-9_.-]+(--[A-Za-z0-9_.-]+)?/snapshots/[0-9a-f]{40}$"

RepoType = Literal["model", "dataset"]
CacheName = Literal["user", "llem"]


def is_hub_id(name: str) -> bool:
    return bool(HUB_ID.fullmatch(name)) and ".." not in name and "--" not in name


class HubItem(Strict):
    """One repository a study's runs need."""

    repo_id: str
    revision: str | None = None
    repo_type: RepoType = "model"

    @property
    def key(self) -> str:
        """`model:org/name@rev`: one string per item, for maps and messages."""
        return f"{self.repo_type}:{self.repo_id}@{self.revision or 'main'}"

    @property
    def folder(self) -> str:
        """Its folder in a hub cache, as the hub client names it: `models--org--name`."""
        return f"{self.repo_type}s--{self.repo_id.replace('/', '--')}"


class FetchRequest(Strict):
    items: list[HubItem]
    online: bool = Field(description="Download what neither cache holds (else: report it).")
    stall_s: float | None = Field(
        None,
        gt=0,
        description="A download that wrote no byte for this long ends itself, s: the fetch's "
        "own limit, which holds when no host watches it (llem killed -9).",
    )
    deadline_s: float | None = Field(
        None, gt=0, description="The fetch ends itself this long after it started, s."
    )


class FetchedItem(Strict):
    """Where an item's snapshot is: `<cache root>/<path>`, at commit `commit`."""

    item: HubItem
    cache: CacheName | None = Field(description="None: in neither cache (see `problem`).")
    path: str | None = Field(
        None, pattern=SNAPSHOT_PATH, description="The snapshot folder, relative to the cache."
    )
    commit: str | None = None
    downloaded: bool = False
    problem: str | None = None
    needs_token: bool = Field(
        False, description="The hub refused it without a token: gated, private or absent."
    )


class FetchReport(Strict):
    """The whole of `fetched.json`."""

    items: list[FetchedItem]
