"""The study loop behind `llem run`: pre-flight, then per run work folder -> container -> outcome
-> manifest -> gap, with resume, orphan cleanup, GPU locks and signal handling.

Pre-flight order (nothing is written until all pass): plan (shown); with --locked, the lock
file read; GPU locks (before the engine and runtime checks, so a busy GPU is named even where
the NVIDIA runtime is missing); engine reachable; every image resolved to its ID and digest (and
shown); with --locked, each compared with the lock; NVIDIA runtime when GPUs are requested; the
confirmation cap.

Every study folder gets `study.lock.yaml`, the images it runs on, in the format of
`llem images lock`; beside the folder's copy `study.yaml` it is that copy's lock, so
`llem run <study-folder>/study.yaml --locked` reruns a study on the same images or names the
one that differs.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

import docker
import docker.errors

from llenergymeasure import __version__
from llenergymeasure.config.loader import load_study
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.contract.workdir import CONFIG_FILE, CONTAINER_LOG_FILE, atomic_write_json
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator import layout, run_spec
from llenergymeasure.orchestrator.container import run_container, tail_lines
from llenergymeasure.orchestrator.container_user import ContainerLimits, ContainerUser
from llenergymeasure.orchestrator.cooldown import wait_for_temperature
from llenergymeasure.orchestrator.display import Display, result_summary
from llenergymeasure.orchestrator.engine import (
    ResolvedImage,
    connect,
    engine_answers,
    require_nvidia_runtime,
    resolve_image,
)
from llenergymeasure.orchestrator.image_lock import (
    StudyLock,
    differences,
    load_lock,
    lock_path_for,
    require_locked,
    write_lock,
)
from llenergymeasure.orchestrator.locks import GpuLocks
from llenergymeasure.orchestrator.orphans import remove_orphans
from llenergymeasure.orchestrator.outcome import classify
from llenergymeasure.orchestrator.pids import limit_reason
from llenergymeasure.orchestrator.stop import EXIT_INTERRUPTED, StopState, handle_signals
from llenergymeasure.study.estimate import estimate_run
from llenergymeasure.study.expand import Plan, expand
from llenergymeasure.study.hashing import design_hash
from llenergymeasure.study.manifest import Manifest, manifest_path
from llenergymeasure.study.manifest_models import RunRecord, StudyRecord
from llenergymeasure.study.models import PlannedRun
from llenergymeasure.study.order import gap_before

LOG_TAIL_LINES = 20

ShowPlan = Callable[[Plan, StudyConfig], None]


@dataclass
class RunOptions:
    resume: bool = False
    retry_failed: bool = False
    yes: bool = False
    locked: bool = False
    mem_limit: str | None = None
    gpu_lock_dir: Path | None = None


@dataclass
class Preflight:
    study: StudyConfig
    plan: Plan
    design_hash: str
    images: dict[str, ResolvedImage] = field(default_factory=dict)
    gpu_indices: list[int] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def preflight(
    study_path: Path,
    options: RunOptions,
    say: Display,
    show_plan: ShowPlan | None = None,
    locks: GpuLocks | None = None,
) -> tuple[Preflight, docker.DockerClient, GpuLocks]:
    study = load_study(study_path)
    plan = expand(study, layout.source_dir_for(study_path))
    if not plan.runs:
        raise UserError(f"{study_path}: the study plans no runs", hint="see `llem plan`")
    if show_plan is not None:
        show_plan(plan, study)
    user = ContainerUser.for_invoker(study.execution.container_user)
    run_spec.check_local_inputs(plan.runs, layout.source_dir_for(study_path), user)
    lock_file = lock_path_for(study_path) if options.locked else None
    lock = load_lock(lock_file) if lock_file is not None else None
    gpu_ids = study.execution.gpu_ids
    needed: set[int] = set()
    for run in plan.runs:
        if run.config.gpu_count > len(gpu_ids):
            raise UserError(
                f"run {run.run_id} needs {run.config.gpu_count} GPUs but execution.gpu_ids "
                f"lists {len(gpu_ids)}",
                hint="list more GPU indices under execution.gpu_ids",
            )
        needed.update(run_spec.gpus_for(run, gpu_ids))
    held = locks or GpuLocks(sorted(needed), study.name, options.gpu_lock_dir)
    held.acquire()
    try:
        client = connect()
        images = {
            backend: _resolve(client, study.image_for(backend), backend, lock, lock_file)
            for backend in sorted({run.config.backend for run in plan.runs})
        }
        for backend, image in images.items():
            say.note(f"image for {backend}: {image.ref} {image.id} " + _digest_text(image))
        if lock_file is not None:
            require_locked(lock_file, {b: image.locked() for b, image in images.items()})
            say.note(f"images match the lock {lock_file}")
        if needed:
            require_nvidia_runtime(client)
        cap = study.execution.max_runs_without_confirmation
        if len(plan.runs) > cap and not options.yes:
            if not sys.stdin.isatty():
                raise UserError(
                    f"the study plans {len(plan.runs)} runs, above the {cap} that run "
                    "without confirmation, and there is no terminal to ask",
                    hint="pass --yes (or raise execution.max_runs_without_confirmation)",
                )
            answer = input(f"{len(plan.runs)} runs planned (cap {cap}). Run them? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise UserError("not confirmed; nothing was run")
    except BaseException:
        held.release()
        raise
    pre = Preflight(study, plan, design_hash(study), images, sorted(needed))
    return pre, client, held


def _digest_text(image: ResolvedImage) -> str:
    return f"digest {image.digest}" if image.digest else "(no repo digest: a local build)"


def _resolve(
    client: docker.DockerClient,
    ref: str,
    backend: str,
    lock: StudyLock | None,
    lock_file: Path | None,
) -> ResolvedImage:
    """The image by ID; under --locked a missing one is named with the image the lock wants."""
    try:
        return resolve_image(client, ref, backend)
    except UserError as error:
        wanted = lock.images.get(backend) if lock is not None else None
        if wanted is None or "is not present" not in error.message:
            raise
        present = True
        try:
            client.images.get(wanted.image_id)
        except docker.errors.DockerException:
            present = False
        raise UserError(
            f"--locked: image {ref!r} for backend {backend!r} is not present; the lock "
            f"{lock_file} wants image {wanted.image_id}"
            + (f" ({wanted.repo_digest})" if wanted.repo_digest else " (a local build)"),
            hint=(
                f"that image is still here under another name: `docker tag {wanted.image_id} "
                f"{ref}` restores it"
                if present
                else f"load or pull that image and tag it {ref} "
                f"(`docker load`, `docker pull {wanted.repo_digest or ref}`)"
            ),
        ) from None


def open_study(pre: Preflight, study_path: Path, options: RunOptions, say: Display) -> Manifest:
    """A new study folder, or with --resume the newest one of the same design."""
    study = pre.study
    output_dir = layout.output_dir_for(study_path, study.output_dir)
    study_dir = (
        layout.find_resumable(output_dir, study.name, pre.design_hash) if options.resume else None
    )
    if options.resume and study_dir is None:
        say.note("nothing to resume for this design: starting a new study folder")
    if study_dir is None:
        study_dir = layout.create_study_dir(
            output_dir, study.name, pre.design_hash, study.source_path, study.base_path
        )
        layout.write_plan(study_dir, pre.plan.runs)
    _lock_study_images(study_dir, pre, say)
    plan = layout.load_plan(study_dir)
    if manifest_path(study_dir).exists():
        manifest = Manifest.open(study_dir)
    else:
        record = StudyRecord(
            study_id=study_dir.name,
            study_name=study.name,
            design_hash=pre.design_hash,
            created_at=now_iso(),
            llem_version=__version__,
            source_dir=str(layout.source_dir_for(study_path)),
        )
        manifest = Manifest.create(study_dir, record)
    missing = [_pending(run) for run in plan if run.run_id not in manifest.record.runs]
    if missing:  # a kill while the journal was being started
        manifest.add_runs(missing)
    if manifest.record.status != "running":
        manifest.set_status("running")
    pre.plan = Plan(configs=pre.plan.configs, runs=plan, skipped=pre.plan.skipped)
    return manifest


def _lock_study_images(study_dir: Path, pre: Preflight, say: Display) -> None:
    """Write the study's `study.lock.yaml` (also when a resumed folder lacks one); on resume,
    warn when the images now differ from it: the manifest records each run's own image."""
    current = {backend: image.locked() for backend, image in pre.images.items()}
    lock_file = study_dir / layout.STUDY_LOCK_FILE
    if lock_file.is_file():
        for line in differences(load_lock(lock_file).images, current):
            say.note(f"warning: the images differ from {lock_file}: {line}")
        return
    lock = StudyLock(
        study_name=pre.study.name, created_at=now_iso(), llem_version=__version__, images=current
    )
    write_lock(lock_file, lock, origin="`llem run` at the start of this study")


def _pending(run: PlannedRun) -> RunRecord:
    return RunRecord(
        run_id=run.run_id,
        run_index=run.run_index,
        config_hash=run.config_hash,
        cycle=run.cycle,
        backend=run.config.backend,
    )


def runs_to_do(manifest: Manifest, plan: list[PlannedRun], retry_failed: bool) -> list[PlannedRun]:
    """Completed runs never repeat; running/interrupted/pending run; failed only on request."""
    todo = []
    for run in plan:
        status = manifest.record.runs[run.run_id].status
        if status == "completed" or (status == "failed" and not retry_failed):
            continue
        todo.append(run)
    return todo


def run_study(
    study_path: Path,
    options: RunOptions,
    display: Display | None = None,
    show_plan: ShowPlan | None = None,
) -> int:
    """Run (or resume) a study; returns the exit code: 0 all completed, 1 some failed, 130
    interrupted. Problems a user can fix raise UserError. `show_plan` prints the plan first."""
    say = display or Display()
    pre, client, locks = preflight(study_path, options, say, show_plan)
    try:
        removed = remove_orphans(client)
        if removed:
            say.note(f"removed {removed} container(s) left by a llem process that no longer runs")
        manifest = open_study(pre, study_path, options, say)
        with manifest, handle_signals(StopState()) as stop:
            return _loop(pre, manifest, client, options, stop, say, study_path)
    finally:
        locks.release()


def _loop(
    pre: Preflight,
    manifest: Manifest,
    client: docker.DockerClient,
    options: RunOptions,
    stop: StopState,
    say: Display,
    study_path: Path,
) -> int:
    study, plan = pre.study, pre.plan.runs
    study_dir = manifest.path.parent
    todo = runs_to_do(manifest, plan, options.retry_failed)
    done = len(plan) - len(todo)
    say.note(f"study {study_dir} : {len(todo)} of {len(plan)} runs to do")
    ctx = run_spec.StudyContext(
        study_id=manifest.record.study_id,
        study_name=study.name,
        study_file_dir=layout.source_dir_for(study_path),
        offline=study.offline,
        gpu_ids=study.execution.gpu_ids,
        user=ContainerUser.for_invoker(study.execution.container_user),
        limits=ContainerLimits(study.execution.pids_limit, study.execution.ulimits),
        mem_limit=options.mem_limit,
    )
    say.start(len(plan), done)
    previous: PlannedRun | None = None
    try:
        for position, run in enumerate(todo, start=done + 1):
            if previous is not None and _wait_gap(previous, run, pre, stop, say):
                manifest.set_status("interrupted")
                say.note("interrupted during a gap; resume with `llem run --resume`")
                return EXIT_INTERRUPTED
            previous = run
            record = _execute(run, position, len(plan), pre, ctx, manifest, client, stop, say)
            if record.status == "interrupted":
                manifest.set_status("interrupted")
                say.note(f"interrupted; resume with `llem run {study_path} --resume`")
                return EXIT_INTERRUPTED
    finally:
        say.stop()
    failed = [r for r in manifest.record.runs.values() if r.status != "completed"]
    manifest.set_status("failed" if failed else "completed")
    from llenergymeasure.results.export import write_study_outputs  # pandas: only at the end

    written = write_study_outputs(study_dir)
    say.note(
        f"done: {len(plan) - len(failed)} completed, {len(failed)} failed; results in {study_dir} "
        f"({', '.join(path.name for path in written)})"
    )
    return 1 if failed else 0


def _wait_gap(
    previous: PlannedRun, run: PlannedRun, pre: Preflight, stop: StopState, say: Display
) -> bool:
    """Wait the gap (and cool-down); True when a stop came meanwhile."""
    execution = pre.study.execution
    seconds = gap_before(previous, run, execution)
    if seconds > 0:
        reason = "between cycles" if previous.cycle != run.cycle else "between experiments"
        say.gap(seconds, reason)
        if _gap_sleep(seconds, stop, say.gap_left):
            return True
    target = execution.cooldown_to_temp_c
    gpus = run_spec.gpus_for(run, execution.gpu_ids)
    if target is not None and gpus:
        return wait_for_temperature(gpus, target, stop, say.note)
    return stop.requested


def _gap_sleep(seconds: float, stop: StopState, countdown: Callable[[float], None]) -> bool:
    """Sleep, counting down; in a TTY, Enter skips the rest. True when stopped."""
    deadline = time.monotonic() + seconds
    interactive = sys.stdin.isatty()
    while (left := deadline - time.monotonic()) > 0:
        countdown(left)
        if interactive:
            import select

            ready, _, _ = select.select([sys.stdin], [], [], min(left, 0.2))
            if ready:
                sys.stdin.readline()
                return stop.requested
            if stop.requested:
                return True
        elif stop.sleep(min(left, 0.2)):
            return True
    return stop.requested


def _execute(
    run: PlannedRun,
    position: int,
    total: int,
    pre: Preflight,
    ctx: run_spec.StudyContext,
    manifest: Manifest,
    client: docker.DockerClient,
    stop: StopState,
    say: Display,
) -> RunRecord:
    study_dir = manifest.path.parent
    workdir = layout.work_dir(study_dir, run.run_id)
    if workdir.exists():  # an earlier attempt: start clean so no stale file is mistaken
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ctx.user.hand_over(workdir)
    image = pre.images[run.config.backend]
    request, spec = run_spec.build(run, ctx, image, workdir)
    atomic_write_json(workdir / CONFIG_FILE, request)
    execution = pre.study.execution
    timeout_s = execution.timeout_for(estimate_run(run.config).total_s)
    previous = manifest.record.runs[run.run_id]
    manifest.update_run(
        run.run_id,
        status="running",
        outcome=None,
        attempts=previous.attempts + 1,
        image_ref=image.ref,
        image_id=image.id,
        image_digest=image.digest,
        container_id=None,
        started_at=now_iso(),
        finished_at=None,
        duration_s=None,
        exit_code=None,
        error_type=None,
        error=None,
        log_tail=None,
        result_path=None,
    )
    say.run_started(run, position, total, workdir)
    exit_ = run_container(
        client, spec, timeout_s, execution.stall_timeout_s, stop, on_tick=say.tick
    )
    common = {
        "container_id": exit_.container_id,
        "finished_at": now_iso(),
        "duration_s": round(exit_.finished_at - exit_.started_at, 3),
        "exit_code": exit_.exit_code,
    }
    if exit_.engine_error is not None and exit_.killed_for != "interrupt":
        if not engine_answers():
            _engine_gone(run, manifest, exit_.engine_error, common, say)
        return _engine_refused(run, manifest, exit_.engine_error, common, say)
    log_tail = tail_lines(workdir / CONTAINER_LOG_FILE, LOG_TAIL_LINES)
    verdict = classify(
        workdir,
        exit_.exit_code,
        exit_.oom_killed,
        exit_.killed_for,
        timeout_s,
        execution.stall_timeout_s,
        limit_reason(spec.pids_limit, exit_.forks_refused, log_tail),
    )
    # A daemon shutting down closes its socket, then stops its containers: the run looks failed
    # (exit code, maybe an error.json) although only the engine went away. It must run again.
    gone = verdict.status != "completed" and exit_.killed_for != "interrupt"
    if gone and not engine_answers():
        message = f"its container stopped with exit code {exit_.exit_code}"
        _engine_gone(run, manifest, message, common, say)
    record = manifest.update_run(
        run.run_id,
        status=verdict.status,
        outcome=verdict.outcome,
        error_type=verdict.error_type,
        error=verdict.error,
        log_tail=(log_tail or None) if verdict.status != "completed" else None,
        result_path=(
            str((workdir / "result.json").relative_to(study_dir))
            if verdict.status == "completed"
            else None
        ),
        **common,
    )
    summary = result_summary(verdict.result) if verdict.result else f"{verdict.error or ''}"
    say.run_finished(record, summary)
    return record


def _engine_refused(
    run: PlannedRun, manifest: Manifest, message: str, common: dict[str, object], say: Display
) -> RunRecord:
    """The engine answers but refused the container: a failed run; the study goes on."""
    record = manifest.update_run(
        run.run_id,
        status="failed",
        outcome="crashed",
        error_type="EngineError",
        error=f"the Docker engine refused the container: {message}",
        **common,
    )
    say.run_finished(record, record.error or "")
    return record


def _engine_gone(
    run: PlannedRun, manifest: Manifest, message: str, common: dict[str, object], say: Display
) -> NoReturn:
    """The engine stopped answering: the run is `interrupted` (it runs again on --resume), the
    study stops with one message."""
    manifest.update_run(
        run.run_id,
        status="interrupted",
        outcome="interrupted",
        error_type="EngineGone",
        error=f"the Docker engine stopped answering: {message}",
        **common,
    )
    manifest.set_status("failed")
    say.stop()
    raise UserError(
        f"the Docker engine stopped answering during run {run.run_id} ({message}); "
        f"{_completed(manifest)} runs completed are kept in {manifest.path.parent}",
        hint="start the engine again, then `llem run STUDY.yaml --resume` finishes the study",
    )


def _completed(manifest: Manifest) -> int:
    return sum(r.status == "completed" for r in manifest.record.runs.values())
