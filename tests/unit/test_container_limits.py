"""Who experiment containers run as and under which limits: config, container settings, and how
a crash at the process limit is told apart."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from llenergymeasure.config.study import DEFAULT_CONTAINER_USER, ExecutionConfig
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.container import ContainerSpec
from llenergymeasure.orchestrator.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.outcome import classify
from llenergymeasure.orchestrator.pids import PidsWatch, limit_reason
from llenergymeasure.orchestrator.run_spec import shm_size_for


def test_execution_limits_are_validated() -> None:
    default = ExecutionConfig()
    assert default.container_user == DEFAULT_CONTAINER_USER
    assert default.pids_limit == 8192 and default.ulimits == {}
    with pytest.raises(ValidationError, match="must not be uid 0"):
        ExecutionConfig(container_user="0:1000")
    with pytest.raises(ValidationError, match="container_user"):
        ExecutionConfig(container_user="llem")
    with pytest.raises(ValidationError, match="unknown ulimit 'nproc'"):
        ExecutionConfig(ulimits={"nproc": 10})
    with pytest.raises(ValidationError, match=r"-1 \(unlimited\)"):
        ExecutionConfig(ulimits={"nofile": -5})
    with pytest.raises(ValidationError, match="greater than or equal to 64"):
        ExecutionConfig(pids_limit=10)
    assert ExecutionConfig(pids_limit=None).pids_limit is None


def test_the_container_user_is_the_invoker_unless_the_invoker_is_root() -> None:
    user = ContainerUser.for_invoker("10001:10002")
    if os.geteuid() == 0:
        assert (user.uid, user.gid) == (10001, 10002) and not user.is_invoker
    else:
        assert (user.uid, user.gid) == (os.geteuid(), os.getegid()) and user.is_invoker
    assert user.spec == f"{user.uid}:{user.gid}" and user.uid != 0


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders over needs root")
def test_root_hands_writable_folders_to_the_container_user(tmp_path: Path) -> None:
    user = ContainerUser(10001, 10001)
    (tmp_path / "cache" / "hub").mkdir(parents=True)
    (tmp_path / "cache" / "hub" / "weights").write_text("w")
    user.hand_over(tmp_path / "cache")
    assert (tmp_path / "cache").stat().st_uid == 10001
    assert (tmp_path / "cache" / "hub").stat().st_uid == 0  # never recursive
    (tmp_path / "cache" / "hub" / "weights").unlink()  # still root's to remove


@pytest.mark.skipif(os.geteuid() != 0, reason="handing folders over needs root")
def test_a_folder_swapped_for_a_link_is_not_handed_over(tmp_path: Path) -> None:
    user = ContainerUser(10001, 10001)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "cache").symlink_to(outside)
    with pytest.raises(OSError):  # ELOOP / ENOTDIR: O_NOFOLLOW refuses the link
        user.hand_over(tmp_path / "cache")
    assert outside.stat().st_uid == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the check only applies when llem runs as root")
def test_an_input_the_container_user_cannot_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    user = ContainerUser(10001, 10001)
    folder = tmp_path / "model"
    folder.mkdir()
    folder.chmod(0o700)
    with pytest.raises(UserError) as caught:
        user.check_readable(folder, "model folder")
    assert "not readable by the experiment containers' user 10001:10001" in caught.value.message
    assert f"chmod -R a+rX {folder}" in caught.value.hint
    folder.chmod(0o755)
    user.check_readable(folder, "model folder")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("{}")
    prompts.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert not user.can_read(prompts)


def test_container_settings_carry_the_user_and_limits(tmp_path: Path) -> None:
    limits = ContainerLimits(pids_limit=128, ulimits={"nofile": 4096})
    spec = ContainerSpec(
        image_id="sha256:x",
        name="n",
        labels={},
        workdir=tmp_path,
        user="10001:10001",
        pids_limit=limits.pids_limit,
        ulimits=limits.ulimits_for(gpu_count=1),
    )
    kwargs = spec.create_kwargs()
    assert kwargs["user"] == "10001:10001"
    assert kwargs["pids_limit"] == 128
    assert kwargs["ipc_mode"] == "private"
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["read_only"] is True
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in kwargs["ulimits"]}
    assert ulimits == {
        "core": (0, 0),
        "memlock": (-1, -1),
        "nofile": (4096, 4096),
        "stack": (2**26, 2**26),
    }
    assert kwargs["environment"]["USER"] == "llem"  # getpass works without a passwd entry
    assert ContainerLimits(None).ulimits_for(gpu_count=0) == {"core": 0}
    assert "pids_limit" not in ContainerSpec("i", "n", {}, tmp_path, "1:1").create_kwargs()


@pytest.mark.parametrize(
    ("config", "shm"),
    [
        ({"gpu_count": 0}, None),
        ({"backend": "vllm", "gpu_count": 1}, "1g"),
        ({"backend": "vllm", "gpu_count": 2, "vllm": {"tensor_parallel_size": 2}}, "16g"),
        ({"backend": "tensorrt", "gpu_count": 1}, "16g"),
    ],
)
def test_shared_memory_only_as_the_engine_needs(config: dict, shm: str | None) -> None:
    assert shm_size_for(ExperimentConfig(model="m", **config)) == shm


def test_process_limit_reasons() -> None:
    assert limit_reason(None, 5, "") is None  # no limit set: nothing to blame
    counted = limit_reason(64, 12, "")
    assert counted is not None and "refused it 12 new processes" in counted
    assert "execution.pids_limit = 64" in counted
    assert limit_reason(64, 0, "Resource temporarily unavailable") is None  # the cgroup says no
    inferred = limit_reason(64, None, "OSError: [Errno 11] Resource temporarily unavailable")
    assert inferred is not None and inferred.startswith("its log shows") and "likely" in inferred
    assert limit_reason(64, None, "RuntimeError: can't start new thread") is not None
    assert limit_reason(64, None, "Segmentation fault") is None


def test_a_crash_at_the_process_limit_is_classified_as_such(tmp_path: Path) -> None:
    reason = limit_reason(64, 3, "")
    verdict = classify(tmp_path, 4, False, None, process_limit=reason)
    assert (verdict.status, verdict.outcome, verdict.error_type) == (
        "failed",
        "crashed",
        "ProcessLimit",
    )
    assert verdict.error == f"exited with code 4: {reason}"
    plain = classify(tmp_path, 4, False, None)
    assert (plain.error_type, plain.error) == ("Crash", "exited with code 4")


def test_an_unknown_container_has_no_readable_cgroup() -> None:
    watch = PidsWatch("0" * 64)
    watch.poll()
    assert watch.refused is None and watch.tasks() is None


def test_llems_cache_folders_are_its_own_or_refused(tmp_path: Path, monkeypatch) -> None:
    from llenergymeasure.orchestrator import caches

    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem"))
    user = ContainerUser.for_invoker("10001:10001")
    made = caches.owned_folder(caches.llem_hub_cache(), user)
    assert made.is_dir() and made.stat().st_uid in (os.geteuid(), user.uid)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "llem" / "tensorrt-engines").symlink_to(elsewhere)
    with pytest.raises(UserError, match="is not a folder \\(a link\\?\\)"):
        caches.owned_folder(caches.engine_cache_dir(), user)
    assert elsewhere.stat().st_uid == os.geteuid()  # never handed over through the link
    if os.geteuid() == 0:
        foreign = tmp_path / "llem" / "fetch"
        foreign.mkdir()
        os.chown(foreign, 4242, 4242)
        with pytest.raises(UserError, match="owned by uid 4242"):
            caches.owned_folder(foreign, user)
