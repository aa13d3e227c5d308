"""The fault-injection suite (see test_fault_injection.py), its GPU part: llem killed while GPU
settings are applied.

No GPU here, and a real container cannot be given one, so llem's own study loop runs in a child
process (`helpers/gpu_study_process.py`: `study_run.execute`, the scheduler, collector,
manifest, per-run host lifecycle, host-wide ledger and GPU locks) on in-memory GPUs whose state
lives in a JSON store (`InMemoryGpu`), with a simulated container (a sleep of a random length).
A study sweeping `gpu.power_limit_w` is killed at random instants (seeded; the seed is printed)
with SIGKILL, SIGTERM, SIGHUP and SIGINT, and with SIGKILL just before and just after each of
its first GPU settings lands, then resumed in the same folder. After every kill:
the ledger parses, and a GPU off its original limit has a ledger entry saying what it was
(write-ahead). After a graceful signal: exit 130 and the GPUs back at once. Then a corrupt
ledger file refuses the runs with one message naming it; removed (the documented fix), the
study completes: every run once, the GPU back at its default, the ledger empty.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers.gpus import InMemoryGpu
from helpers.journal import (
    Completed,
    assert_exactly_the_plan,
    assert_kept,
    completed,
    journal,
    runs_started,
    the_study_dir,
)
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger, LedgerEntry
from llenergymeasure.orchestrator.machine.locks import ENV_LOCK_DIR
from llenergymeasure.study.manifest import load_manifest

pytestmark = pytest.mark.docker  # an integration test: real processes killed, run with the rest

SEED = 20_261_207
ROUNDS = 24
DEFAULT_W = 350.0  # the in-memory GPU's default power limit
CHILD = Path(__file__).parents[1] / "helpers" / "gpu_study_process.py"
GRACEFUL = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
PHASES = ("startup", "set", "recorded", "put back")
WHEN = ("before", "after")


class GpuStudy:
    """The study, its in-memory GPU and its lock folder, and the child that runs it."""

    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path
        self.store = tmp_path / "gpus.json"
        self.locks = tmp_path / "locks"
        self.locks.mkdir(mode=0o700)
        InMemoryGpu.of(1, self.store)
        self.study = tmp_path / "study.yaml"
        with open(self.study, "w") as handle:
            YAML().dump(
                {
                    "name": "gpu-faults",
                    "output_dir": "out",
                    "model": "stub:m",
                    "gpu_count": 1,
                    "sweep": {"gpu.power_limit_w": [150, 200, 250, 300]},
                    "execution": {
                        "n_cycles": 5,
                        "gap_between_experiments_s": 0.1,
                        "gap_between_cycles_s": 0.1,
                    },
                },
                handle,
            )

    def start(self, seed: int, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                *map(str, (self.study, self.store, self.locks, seed, *extra)),
            ],
            cwd=self.folder,
            env={**os.environ, ENV_LOCK_DIR: str(self.locks)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def study_dir(self) -> Path | None:
        return the_study_dir(self.folder)

    def limit_w(self) -> float:
        (gpu,) = InMemoryGpu.load(self.store)
        return gpu.power_limit_w()

    def ledger_file(self) -> Path:
        return self.locks / "gpu-settings" / "GPU-0.json"

    def entry(self) -> LedgerEntry | None:
        """GPU-0's ledger entry; every file of the ledger parses."""
        entries = GpuLedger(self.locks).entries()
        assert [e.uuid for e in entries] in ([], ["GPU-0"])
        return entries[0] if entries else None


def _write_ahead(gpu: GpuStudy) -> LedgerEntry | None:
    """A GPU off its original limit has a ledger entry saying what it was, and is at that
    limit or at the one the entry says llem set."""
    entry, limit = gpu.entry(), gpu.limit_w()
    if limit != DEFAULT_W:
        assert entry is not None, f"GPU-0 at {limit} W with no ledger entry"
        assert entry.power_limit_w_before == DEFAULT_W, entry
        assert limit == entry.power_limit_w_set, (limit, entry)
    return entry


def _until(proc: subprocess.Popen, seen: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until `seen`, or the child ended."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not seen():
        assert time.monotonic() < deadline, "the child never reached the instant"
        time.sleep(0.005)


def _instant(
    gpu: GpuStudy, sig: signal.Signals, phase: str, seed: int, rng: random.Random
) -> subprocess.Popen:
    """The child started and, at a random instant of `phase`, sent `sig` (a "setting N:WHEN"
    phase: the child kills itself just before or after its N-th GPU setting lands)."""
    if phase.startswith("setting "):
        return gpu.start(seed, "--die-at", phase.removeprefix("setting "))
    proc = gpu.start(seed)

    def mine() -> LedgerEntry | None:  # the child's own change (not an earlier one's leftover)
        entry = gpu.entry()
        return entry if entry is not None and entry.by.pid == proc.pid else None

    if phase == "startup":  # imports, the folder resumed, the handlers installed, leftovers
        time.sleep(rng.uniform(0, 1.5))
    elif phase == "set":  # a run's limit is on its GPU: in its container, or putting back
        _until(proc, lambda: (e := mine()) is not None and gpu.limit_w() == e.power_limit_w_set)
        time.sleep(rng.uniform(0, 0.5))
    elif phase == "recorded":  # the ledger written, the limit being set (or already)
        _until(proc, lambda: mine() is not None)
    else:  # just put back: the ledger entry forgotten, the manifest line, the gap
        _until(proc, lambda: mine() is not None)
        _until(proc, lambda: mine() is None)
        time.sleep(rng.uniform(0, 0.05))
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc


def _kill_round(
    gpu: GpuStudy, sig: signal.Signals, phase: str, rng: random.Random, kept: Completed
) -> None:
    before = len(journal(gpu.study_dir))
    proc = _instant(gpu, sig, phase, rng.randrange(1 << 30), rng)
    out, err = proc.communicate(timeout=60)
    ended_itself = proc.returncode == 0
    entry = _write_ahead(gpu)
    left = f"{gpu.limit_w():g} W, " + ("ledger entry" if entry is not None else "no entry")
    print(f"  {sig.name} at {phase}: exit {proc.returncode}; GPU-0 at {left}")
    assert "Traceback" not in err or proc.returncode == -signal.SIGINT, err
    study_dir = gpu.study_dir
    if study_dir is not None and (study_dir / "manifest.jsonl").exists():
        load_manifest(study_dir)
        assert_kept(study_dir, kept)
    if ended_itself:  # nothing left to run before the instant came
        return
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, out + err
        return
    started = runs_started(journal(study_dir)[before:])
    assert proc.returncode in (130, -sig), out + err
    if proc.returncode == -sig:  # before its handlers were installed: it started nothing
        assert not started, started
    assert entry is None or entry.by.pid != proc.pid, f"{sig.name} left its change: {entry}"
    if started:  # its first run put back any leftover before it changed the GPU
        assert entry is None and gpu.limit_w() == DEFAULT_W, entry


def _corrupt_ledger_round(gpu: GpuStudy, seed: int) -> None:
    """Garbage in the GPU's ledger file: llem stops at the first run with one message naming
    it (exit 2), that run `interrupted` (it says nothing of its configuration), the GPU
    untouched; the administrator's fix (the GPU put back by hand, the file removed) lets a
    plain --resume finish."""
    gpu.ledger_file().parent.mkdir(mode=0o700, exist_ok=True)
    gpu.ledger_file().write_bytes(b"\x00garbage{")
    gpu.ledger_file().chmod(0o600)
    limit = gpu.limit_w()
    proc = gpu.start(seed)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err and str(gpu.ledger_file()) in out + err
    assert gpu.limit_w() == limit  # nothing touched the GPU
    study_dir = gpu.study_dir
    assert study_dir is not None
    runs = load_manifest(study_dir).runs.values()
    refused = [r for r in runs if r.error_type == "GpuLedger"]
    print(f"  a corrupt ledger: {len(refused)} run refused, llem stopped, exit {proc.returncode}")
    assert len(refused) == 1 and refused[0].status == "interrupted"
    assert str(gpu.ledger_file()) in (refused[0].error or "")
    assert not any(r.status == "failed" for r in runs)
    (gpu_state,) = InMemoryGpu.load(gpu.store)
    gpu_state.update(power_limit_w=DEFAULT_W)  # `nvidia-smi -pl`, then the file removed
    gpu.ledger_file().unlink()


def test_kills_while_gpu_settings_are_applied_never_leave_a_gpu_changed(tmp_path):
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    gpu = GpuStudy(tmp_path)
    # Each graceful signal twice and SIGKILL otherwise, each at a random instant of a random
    # phase; and SIGKILL just before and just after each of a child's first four settings
    # (its own runs' limits set and put back, and an earlier child's leftover put back).
    rounds = [(sig, rng.choice(PHASES)) for sig in [*GRACEFUL, *GRACEFUL]]
    rounds += [(signal.SIGKILL, f"setting {n}:{when}") for n in range(1, 5) for when in WHEN]
    rounds += [(signal.SIGKILL, rng.choice(PHASES)) for _ in range(ROUNDS - len(rounds))]
    rng.shuffle(rounds)
    kept: Completed = {}
    for sig, phase in rounds:
        _kill_round(gpu, sig, phase, rng, kept)
        kept = completed(gpu.study_dir)
    _corrupt_ledger_round(gpu, rng.randrange(1 << 30))
    final = gpu.start(rng.randrange(1 << 30))
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, out + err
    study_dir = gpu.study_dir
    assert study_dir is not None
    assert_exactly_the_plan(study_dir, kept)
    assert gpu.limit_w() == DEFAULT_W and gpu.entry() is None


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_as_the_study_folder_opens_leaves_it_interrupted(tmp_path, sig):
    """A signal just after the manifest is marked running, before the study loop: exit 130,
    the study `interrupted` (not left `running`), nothing started, and --resume finishes it."""
    gpu = GpuStudy(tmp_path)
    child = gpu.start(1, "--signal-at-open", sig)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert gpu.study_dir is not None
    record = load_manifest(gpu.study_dir)
    assert record.status == "interrupted"
    assert all(r.status == "pending" for r in record.runs.values())
    assert gpu.limit_w() == DEFAULT_W
