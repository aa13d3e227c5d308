"""Orchestration overhead: llem's whole per-run lifecycle vs a bare SDK container run.

Same image, same trivial command (`true`), 20 alternating pairs. Bare: `containers.run(...,
remove=True)` with no network. llem: work folder, config.json, manifest transitions (fsync'd),
container create/start with llem's settings, log streaming, watch, inspect, classify, remove.
Prints each median (s, wall clock via time.perf_counter) and the median of per-pair ratios.
Target: ratio <= 1.10. Needs a running engine and an image with /bin/true (default: the fault
test image or the offline base; pass another as argv[1]).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker

from llenergymeasure.config.study import DEFAULT_CONTAINER_USER, DEFAULT_PIDS_LIMIT
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.workdir import WorkPaths, atomic_write_json, run_dir_name
from llenergymeasure.orchestrator.executors.outcome import classify
from llenergymeasure.orchestrator.machine import run_spec
from llenergymeasure.orchestrator.machine.container import run_container
from llenergymeasure.orchestrator.machine.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.machine.engine import resolve_image
from llenergymeasure.orchestrator.machine.slots import Slot
from llenergymeasure.orchestrator.machine.stop import StopState
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.models import PlannedRun

PAIRS = 20


def pick_image(client: docker.DockerClient) -> str:
    if len(sys.argv) > 1:
        return sys.argv[1]
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith("llenergymeasure/base-offline:") or tag == "python:3.11-slim":
                return tag
    raise SystemExit("no small image found; pass one with /bin/true as the first argument")


def bare(client: docker.DockerClient, image_id: str) -> float:
    start = time.perf_counter()
    client.containers.run(image_id, ["true"], remove=True, network_mode="none")
    return time.perf_counter() - start


def llem_lifecycle(
    client: docker.DockerClient, image_ref: str, study_dir: Path, manifest: Manifest, i: int
) -> float:
    start = time.perf_counter()
    config = ExperimentConfig(model="stub:bench", gpu_count=0)  # no hub id: nothing fetched
    run = PlannedRun(
        run_index=i,
        run_id=run_dir_name(i, "0" * 64, 0),
        config_hash="0" * 64,
        config_index=0,
        cycle=0,
        config=config,
    )
    manifest.add_runs(
        [
            RunRecord(
                run_id=run.run_id,
                run_index=i,
                config_hash=run.config_hash,
                cycle=0,
                backend="pytorch",
            )
        ]
    )
    workdir = study_dir / "experiments" / run.run_id
    workdir.mkdir(parents=True)
    image = resolve_image(client, image_ref, "pytorch")
    ctx = run_spec.StudyContext(
        "bench",
        "bench",
        study_dir,
        offline=True,
        user=ContainerUser.for_invoker(DEFAULT_CONTAINER_USER),
        limits=ContainerLimits(DEFAULT_PIDS_LIMIT),
    )
    request, spec = run_spec.build(run, ctx, image, workdir, Slot())
    spec.entrypoint, spec.command = ["true"], []
    atomic_write_json(workdir / WorkPaths.CONFIG, request)
    manifest.update_run(run.run_id, status="running", attempts=1, image_id=image.id)
    exit_ = run_container(client, spec, 60, 60, StopState())
    verdict = classify(workdir, exit_.exit_code, exit_.oom_killed, exit_.killed_for)
    manifest.update_run(
        run.run_id,
        status=verdict.status,
        outcome=verdict.outcome,
        exit_code=exit_.exit_code,
        container_id=exit_.container_id,
    )
    return time.perf_counter() - start


def main() -> None:
    client = docker.from_env()
    image_ref = pick_image(client)
    image_id = client.images.get(image_ref).id
    bare(client, image_id)  # warm the engine's caches for both
    with tempfile.TemporaryDirectory() as tmp:
        study_dir = Path(tmp)
        record = StudyRecord(
            study_id="bench",
            study_name="bench",
            design_hash="0" * 64,
            created_at="",
            llem_version="0",
        )
        with Manifest.create(study_dir, record) as manifest:
            pairs = []
            for i in range(PAIRS):
                b = bare(client, image_id)
                o = llem_lifecycle(client, image_ref, study_dir, manifest, i)
                pairs.append((b, o))
    bare_s = [b for b, _ in pairs]
    llem_s = [o for _, o in pairs]
    ratio = statistics.median(o / b for b, o in pairs)
    print(f"image {image_ref}, {PAIRS} alternating pairs, trivial command `true`")
    print(f"bare SDK containers.run(remove=True): median {statistics.median(bare_s):.3f} s")
    print(f"llem per-run lifecycle:               median {statistics.median(llem_s):.3f} s")
    print(f"median ratio llem/bare: {ratio:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
