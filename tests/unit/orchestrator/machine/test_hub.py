"""The pre-flight's hub containers: a lookup exposed as an experiment is, a download with the
network, only its repositories' folders, a memory limit and the token only when asked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llenergymeasure.contract.hub import LLEM_HUB_DIR, USER_HUB_DIR, FetchedItem, HubItem
from llenergymeasure.orchestrator.machine import hub
from llenergymeasure.orchestrator.machine.container import ContainerExit, KillReason
from llenergymeasure.orchestrator.machine.container_user import ContainerUser

USER = ContainerUser(10001, 10001)
COMMIT = "c" * 40
FETCH_IMAGE = "sha256:" + "f" * 64


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A user's hub cache holding two repositories, and llem's cache; a token on the host."""
    user_cache = tmp_path / "hf" / "hub"
    for name in ("models--org--wanted", "models--org--other"):
        (user_cache / name).mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(user_cache))
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example")
    return user_cache, tmp_path / "llem" / "hf-hub"


def _spec(
    tmp_path: Path, *, download: bool, token: bool = False, items: list[HubItem] | None = None
):
    wanted = items or [HubItem(repo_id="org/wanted")]
    return hub.fetch_spec(
        FETCH_IMAGE,
        tmp_path / "work",
        USER,
        wanted,
        download=download,
        token=token,
        pids_limit=512,
    )


def test_a_download_mounts_only_its_repositories_with_a_network_a_memory_limit_and_no_token(
    tmp_path: Path, caches: tuple[Path, Path]
) -> None:
    user_cache, llem_hub = caches
    spec = _spec(tmp_path, download=True)
    assert spec.image_id == FETCH_IMAGE and spec.command is None  # the fetch image's entrypoint
    assert spec.mounts == {
        str(user_cache / "models--org--wanted"): {
            "bind": f"{USER_HUB_DIR}/models--org--wanted",
            "mode": "ro",
        },
        str(llem_hub / "models--org--wanted"): {
            "bind": f"{LLEM_HUB_DIR}/models--org--wanted",
            "mode": "rw",
        },
        str(llem_hub / ".locks" / "models--org--wanted"): {
            "bind": f"{LLEM_HUB_DIR}/.locks/models--org--wanted",
            "mode": "rw",
        },
    }
    assert not any(host == str(user_cache) for host in spec.mounts)  # never the whole cache
    kwargs = spec.create_kwargs()
    assert "network_mode" not in kwargs  # the engine's default network: this container only
    assert kwargs["mem_limit"] == hub.FETCH_MEM_LIMIT == kwargs["memswap_limit"]
    assert kwargs["pids_limit"] == 512 and kwargs["read_only"] and kwargs["cap_drop"] == ["ALL"]
    assert kwargs["user"] == "10001:10001"
    assert "HF_TOKEN" not in spec.environment  # not asked for: not given
    assert spec.environment["HF_ENDPOINT"] == "http://mirror.example"
    assert spec.labels[hub.FETCH_LABEL] == "download"


def test_the_token_goes_only_to_a_download_that_asks_again_for_a_refused_repository(
    tmp_path: Path, caches: tuple[Path, Path]
) -> None:
    assert _spec(tmp_path, download=True, token=True).environment["HF_TOKEN"] == "hf_secret"
    lookup = _spec(tmp_path, download=False, token=True)
    assert "HF_TOKEN" not in lookup.environment


def test_a_lookup_runs_as_an_experiment_does_no_network_no_token_everything_read_only(
    tmp_path: Path, caches: tuple[Path, Path]
) -> None:
    user_cache, llem_hub = caches
    (llem_hub / "models--org--wanted").mkdir(parents=True)
    spec = _spec(tmp_path, download=False)
    assert spec.network_none and spec.create_kwargs()["network_mode"] == "none"
    assert spec.command == ["--fetch"]  # llem-experiment of the study's image
    assert {bind["mode"] for bind in spec.mounts.values()} == {"ro"}
    assert set(spec.mounts) == {
        str(user_cache / "models--org--wanted"),
        str(llem_hub / "models--org--wanted"),
    }
    assert spec.environment["HF_HUB_OFFLINE"] == "1"
    assert "HF_TOKEN" not in spec.environment and "HF_ENDPOINT" not in spec.environment
    assert spec.create_kwargs()["mem_limit"] == hub.FETCH_MEM_LIMIT


def test_an_experiment_gets_the_snapshots_repository_folder_not_the_cache(
    caches: tuple[Path, Path],
) -> None:
    user_cache, llem_hub = caches
    fetched = FetchedItem(
        item=HubItem(repo_id="org/wanted"),
        cache="llem",
        path=f"models--org--wanted/snapshots/{COMMIT}",
        commit=COMMIT,
    )
    assert hub.inside_path(fetched) == (
        llem_hub / "models--org--wanted",
        f"{LLEM_HUB_DIR}/models--org--wanted",
        f"{LLEM_HUB_DIR}/models--org--wanted/snapshots/{COMMIT}",
    )
    user = fetched.model_copy(update={"cache": "user"})
    assert hub.inside_path(user)[0] == user_cache / "models--org--wanted"


def test_an_answer_naming_another_repository_is_not_taken() -> None:
    item = HubItem(repo_id="org/wanted")
    elsewhere = FetchedItem(
        item=item, cache="user", path=f"models--org--other/snapshots/{COMMIT}", commit=COMMIT
    )
    refused = hub.checked(item, elsewhere)
    assert refused.cache is None and "another folder" in (refused.problem or "")
    assert hub.checked(item, None).problem == "no answer"
    right = elsewhere.model_copy(update={"path": f"models--org--wanted/snapshots/{COMMIT}"})
    assert hub.checked(item, right) == right


def _exit(**how: object) -> ContainerExit:
    now = time.time()
    fields: dict = {"container_id": "c", "exit_code": 137, "oom_killed": False, "killed_for": None}
    return ContainerExit(**{**fields, **how}, started_at=now, finished_at=now)  # type: ignore[arg-type]


def test_a_stalled_or_starved_download_is_one_message_that_says_so() -> None:
    stalled = hub.no_answer(_exit(killed_for=KillReason.STALL), "sha256:ab", True, "...")
    assert f"wrote nothing for {hub.FETCH_STALL_S:.0f} s" in stalled.message
    assert "llem's fetch image" in stalled.message and "network" in (stalled.hint or "")
    starved = hub.no_answer(_exit(oom_killed=True), "sha256:ab", True, "...")
    assert hub.FETCH_MEM_LIMIT in starved.message
    lookup = hub.no_answer(_exit(exit_code=1), "sha256:ab", False, "...")
    assert "the study's image" in lookup.message and "--fetch" in (lookup.hint or "")
