"""Local inputs of a run: model folders and JSONL prompt files are found, mounted and named."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers.factories import study_record
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.container import MODELS_DIR, PROMPTS_DIR
from llenergymeasure.contract.hub import LLEM_HUB_DIR, USER_HUB_DIR, FetchedItem, HubItem
from llenergymeasure.contract.run import RunRequest
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout
from llenergymeasure.orchestrator.machine import run_spec
from llenergymeasure.orchestrator.machine.container import ContainerSpec
from llenergymeasure.orchestrator.machine.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.machine.engine import ResolvedImage
from llenergymeasure.orchestrator.machine.run_spec import shm_size_for
from llenergymeasure.orchestrator.machine.slots import Slot
from llenergymeasure.study.folder import StudyPaths
from llenergymeasure.study.hashing import config_hash
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.models import PlannedRun

USER = ContainerUser.for_invoker("10001:10001")


COMMIT = "c" * 40


def _fetched(repo_id: str, repo_type: str = "model", cache: str = "user") -> FetchedItem:
    kind = "models" if repo_type == "model" else "datasets"
    return FetchedItem(
        item=HubItem(repo_id=repo_id, repo_type=repo_type),  # type: ignore[arg-type]
        cache=cache,  # type: ignore[arg-type]
        path=f"{kind}--{repo_id.replace('/', '--')}/snapshots/{COMMIT}",
        commit=COMMIT,
    )


HUB = {f.item.key: f for f in (_fetched("org/m"), _fetched("org/dataset", "dataset", "llem"))}


def _run(**config: object) -> PlannedRun:
    cfg = ExperimentConfig.model_validate({"gpu_count": 0, **config})
    digest = config_hash(cfg)
    return PlannedRun(
        run_index=0,
        run_id=f"0000_{digest[:8]}_c0",
        config_hash=digest,
        config_index=0,
        cycle=0,
        config=cfg,
    )


def _ctx(study_dir: Path, **extra: object) -> run_spec.StudyContext:
    return run_spec.StudyContext(
        "s",
        "s",
        study_dir,
        offline=True,
        user=USER,
        limits=ContainerLimits(None),
        hub=HUB,
        **extra,  # type: ignore[arg-type]
    )


def _spec(run: PlannedRun, study_dir: Path, tmp_path: Path) -> tuple[RunRequest, ContainerSpec]:
    image = ResolvedImage(ref="img", id="sha256:" + "0" * 64, digest=None)
    return run_spec.build(run, _ctx(study_dir), image, tmp_path / "work", Slot())


def _build(run: PlannedRun, study_dir: Path, tmp_path: Path) -> tuple[dict, dict]:
    request, spec = _spec(run, study_dir, tmp_path)
    return request.config.model_dump(), spec.mounts


def test_relative_model_folder_and_jsonl_file_are_mounted_read_only(tmp_path: Path) -> None:
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    run = _run(model="./models/tiny", prompts={"source": "jsonl", "path": "prompts.jsonl"})
    config, mounts = _build(run, tmp_path, tmp_path)
    model_mount = mounts[str(tmp_path / "models" / "tiny")]
    prompt_mount = mounts[str(tmp_path / "prompts.jsonl")]
    assert model_mount["mode"] == prompt_mount["mode"] == "ro"
    assert config["model"] == model_mount["bind"]
    assert config["model"].startswith(MODELS_DIR + "/") and config["model"].endswith("-tiny")
    assert config["prompts"]["path"] == prompt_mount["bind"]
    assert config["prompts"]["path"].startswith(PROMPTS_DIR + "/")
    # The plan keeps the host path as written.
    assert run.config.model == "./models/tiny"


def test_a_local_dataset_folder_is_mounted_and_a_hub_dataset_is_its_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem-cache"))
    (tmp_path / "data").mkdir()
    local = _run(model="org/m", prompts={"source": "hf_dataset", "name": "./data"})
    config, mounts = _build(local, tmp_path, tmp_path)
    mount = mounts[str(tmp_path / "data")]
    assert mount["mode"] == "ro" and config["prompts"]["name"] == mount["bind"]
    hub = _run(model="org/m", prompts={"source": "hf_dataset", "name": "org/dataset"})
    config, mounts = _build(hub, tmp_path, tmp_path)
    snapshot = f"{LLEM_HUB_DIR}/datasets--org--dataset/snapshots/{COMMIT}"
    assert config["prompts"]["name"] == snapshot
    repository = tmp_path / "llem-cache" / "hf-hub" / "datasets--org--dataset"
    assert mounts[str(repository)] == {
        "bind": f"{LLEM_HUB_DIR}/datasets--org--dataset",
        "mode": "ro",
    }
    assert str(tmp_path / "llem-cache" / "hf-hub") not in mounts  # that repository alone


def test_a_hub_model_is_its_snapshot_in_a_read_only_cache_and_no_secret_or_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")
    request, spec = _spec(_run(model="org/m", backend="vllm"), tmp_path, tmp_path)
    assert request.config.model == f"{USER_HUB_DIR}/models--org--m/snapshots/{COMMIT}"
    assert request.context.hub_commits == {"model:org/m@main": COMMIT}
    assert request.context.offline is True
    repository = {"bind": f"{USER_HUB_DIR}/models--org--m", "mode": "ro"}
    assert spec.mounts[str(tmp_path / "hf" / "hub" / "models--org--m")] == repository
    assert not any(
        host in (str(tmp_path / "hf"), str(tmp_path / "hf" / "hub")) for host in spec.mounts
    )
    assert "HF_TOKEN" not in spec.environment and spec.environment["HF_HUB_OFFLINE"] == "1"
    assert spec.environment["VLLM_LOGGING_LEVEL"] == "DEBUG"  # the backend's allow-list
    assert spec.network_none and spec.create_kwargs()["network_mode"] == "none"


def test_a_hub_cache_snapshot_folder_as_model_is_mounted_with_its_blobs(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "blobs" / "abc").write_text("{}")
    (snapshot / "config.json").symlink_to("../../blobs/abc")
    run = _run(model=str(snapshot))
    run_spec.check_local_inputs([run], tmp_path, USER)  # its links stay inside what is mounted
    config, mounts = _build(run, tmp_path, tmp_path)
    bind = mounts[str(repo)]["bind"]
    assert bind.startswith(MODELS_DIR + "/") and bind.endswith("-models--org--tiny")
    assert config["model"] == f"{bind}/snapshots/{COMMIT}"


def test_a_model_folder_linking_outside_itself_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(UserError, match="has a link that leaves it") as caught:
        run_spec.check_local_inputs([_run(model="./m")], tmp_path, USER)
    assert "cp -rL" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("config", "path", "named"),
    [
        ({"model": "../no-such-model"}, "../no-such-model", "model folder '../no-such-model'"),
        (
            {"model": "org/m", "prompts": {"source": "jsonl", "path": "missing.jsonl"}},
            "missing.jsonl",
            "prompt file 'missing.jsonl'",
        ),
        (
            {"model": "org/m", "prompts": {"source": "hf_dataset", "name": "./no-data"}},
            "./no-data",
            "dataset './no-data'",
        ),
    ],
)
def test_missing_local_inputs_are_refused_naming_the_path(
    tmp_path: Path, config: dict, path: str, named: str
) -> None:
    with pytest.raises(UserError) as caught:
        run_spec.check_local_inputs([_run(**config)], tmp_path, USER)
    assert named in caught.value.message
    assert str(run_spec.host_path(path, tmp_path)) in caught.value.message


def test_a_study_folder_copy_resolves_paths_from_the_original_study_file(tmp_path: Path) -> None:
    origin = tmp_path / "project"
    origin.mkdir()
    study_dir = tmp_path / "results" / "demo_20260101T000000_abcdef12"
    study_dir.mkdir(parents=True)
    (study_dir / StudyPaths.STUDY).write_text("model: ./m\n")
    (study_dir / StudyPaths.PLAN).write_text("[]")
    record = study_record(study_id=study_dir.name, source_dir=str(origin))
    Manifest.create(study_dir, record).close()
    assert layout.source_dir_for(study_dir / StudyPaths.STUDY) == origin
    assert layout.source_dir_for(origin / "study.yaml") == origin


def test_a_slots_gpus_are_granted_by_physical_uuid_and_its_cpus_pinned(tmp_path: Path) -> None:
    run = _run(gpu_count=2, model="org/m")
    image = ResolvedImage(ref="img", id="sha256:" + "0" * 64, digest=None)
    uuids = {3: "GPU-aaaa", 5: "GPU-bbbb"}
    ctx = _ctx(tmp_path, gpu_uuids=uuids)
    request, spec = run_spec.build(run, ctx, image, tmp_path / "w", Slot(gpus=(5, 3)))
    assert spec.gpu_devices == ["GPU-bbbb", "GPU-aaaa"]
    assert request.context.gpu_indices == [5, 3]
    assert request.context.gpu_uuids == ["GPU-bbbb", "GPU-aaaa"]
    # where the host's NVML could not name them, by index (and the context says none)
    ctx_unknown = _ctx(tmp_path)
    request, spec = run_spec.build(run, ctx_unknown, image, tmp_path / "w", Slot(gpus=(5, 3)))
    assert spec.gpu_devices == ["5", "3"] and request.context.gpu_uuids == []
    cpu_run = _run(model="org/m")
    request, spec = run_spec.build(cpu_run, ctx_unknown, image, tmp_path / "w", Slot(cpus=(2, 3)))
    assert spec.create_kwargs()["cpuset_cpus"] == "2,3" == request.context.cpuset


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


def test_the_containers_own_deadline_is_the_timeout_plus_the_margin(tmp_path: Path) -> None:
    image = ResolvedImage(ref="img", id="sha256:" + "0" * 64, digest=None)
    run, ctx, work = _run(model="org/m"), _ctx(tmp_path), tmp_path / "work"
    request, _ = run_spec.build(run, ctx, image, work, Slot(), timeout_s=600.0)
    assert request.context.deadline_s == 600.0 + run_spec.DEADLINE_MARGIN_S
    assert RunRequest.model_validate_json(request.model_dump_json()) == request  # config.json
    untimed, _ = run_spec.build(run, ctx, image, work, Slot())
    assert untimed.context.deadline_s is None
