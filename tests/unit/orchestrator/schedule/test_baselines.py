"""Which earlier idle baseline the host offers a run that reuses one (`baseline.reuse_s`)."""

from __future__ import annotations

import datetime
from pathlib import Path

from helpers.results import Figures, pytorch_config, write_study
from llenergymeasure.contract.baseline import BaselineOrigin, IdleBaseline
from llenergymeasure.contract.run import RunContext, RunRequest
from llenergymeasure.contract.workdir import WorkPaths, atomic_write_json
from llenergymeasure.orchestrator.schedule.baselines import offered_baseline
from llenergymeasure.study.manifest import Manifest
from llenergymeasure.study.work_files import read_result

NODE = "host-a"


def ago(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds")


def study(tmp_path: Path, ends_ago: list[float], reused: frozenset[int] = frozenset()) -> Path:
    """Completed runs on NODE's GPU 0, each with its own idle baseline ended `ends_ago` s ago
    (those in `reused`: a baseline they reused)."""
    config = pytorch_config(1)
    study_dir = write_study(
        tmp_path, [({}, config)], len(ends_ago), lambda i, c: Figures(100.0, 0.5)
    )
    manifest = Manifest.open(study_dir)
    for cycle, run_id in enumerate(sorted(manifest.record.runs)):
        manifest.update_run(
            run_id,
            node=NODE,
            gpu_indices=[0],
            gpu_uuids=["GPU-0"],
            finished_at=ago(ends_ago[cycle]),
        )
        workdir = study_dir / "experiments" / run_id
        result = read_result(workdir)
        idle = IdleBaseline(
            measured_at=ago(ends_ago[cycle] + 5),
            duration_s=30.0,
            gpu_uuids=["GPU-0"],
            per_gpu_w=[80.0 + cycle],
            gpu_sem_w=0.2,
            cpu_w=None,
            max_temperature_c=[45.0],
        )
        origin = BaselineOrigin(run_id="other", age_s=1.0) if cycle in reused else None
        energy = result.energy.model_copy(
            update={"idle_baseline": idle, "baseline_reused_from": origin}
        )
        atomic_write_json(workdir / WorkPaths.RESULT, result.model_copy(update={"energy": energy}))
    manifest.close()
    return study_dir


def request(reuse_s: float | None) -> RunRequest:
    config = pytorch_config(1)
    config = config.model_copy(
        update={"baseline": config.baseline.model_copy(update={"reuse_s": reuse_s})}
    )
    context = RunContext(
        study_id="s",
        study_name="s",
        run_id="9_new_c0",
        run_index=9,
        config_hash="h",
        cycle=0,
        gpu_indices=[0],
        gpu_uuids=["GPU-0"],
    )
    return RunRequest(config=config, context=context)


def test_the_newest_measured_baseline_on_the_same_gpus_is_offered(tmp_path: Path) -> None:
    study_dir = study(tmp_path, ends_ago=[100.0, 40.0, 10.0], reused={2})
    record = Manifest.open(study_dir).record
    offered = offered_baseline(study_dir, record, request(reuse_s=120.0), NODE)
    assert offered is not None
    # the newest run reused its baseline: no chains, the one before it measured its own
    assert offered.baseline.per_gpu_w == [81.0]
    assert offered.origin.run_id == sorted(record.runs)[1]
    assert 44.0 <= offered.origin.age_s <= 60.0


def test_nothing_is_offered_too_old_elsewhere_or_unasked(tmp_path: Path) -> None:
    study_dir = study(tmp_path, ends_ago=[100.0])
    record = Manifest.open(study_dir).record
    assert offered_baseline(study_dir, record, request(reuse_s=60.0), NODE) is None  # too old
    assert offered_baseline(study_dir, record, request(reuse_s=600.0), "host-b") is None
    assert offered_baseline(study_dir, record, request(reuse_s=600.0), None) is None  # placed later
    assert offered_baseline(study_dir, record, request(reuse_s=None), NODE) is None
    other_gpu = request(reuse_s=600.0)
    other_gpu = other_gpu.model_copy(
        update={"context": other_gpu.context.model_copy(update={"gpu_uuids": ["GPU-1"]})}
    )
    assert offered_baseline(study_dir, record, other_gpu, NODE) is None
    assert offered_baseline(study_dir, record, request(reuse_s=600.0), NODE) is not None
