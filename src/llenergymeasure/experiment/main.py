"""`llem-experiment WORKDIR`: run one experiment inside its container (`--fetch`: find or download
the hub repositories the host asks for, `experiment.fetch`).

The measurement itself is `experiment.process` (exit 0 with `result.json`, 1 with `error.json`).
Where config.json gives the run a deadline (`context.deadline_s`: the host's timeout plus a
margin, counted from the start of this process, within a fraction of a second of the
container's), this process is its supervisor, so that no container outlives its timeout even
when the llem that watches it is gone (`kill -9`, a lost node): it starts the measurement as a
child in a process group of its own, passes SIGTERM and SIGINT on to it, exits with its exit
code, and at the deadline stops the whole group (SIGTERM, DEADLINE_GRACE_S, SIGKILL), leaves
error.json `DeadlineExceeded` where the run had written neither result nor error, and exits 137.
Normally the host's kill comes first (the margin) and the run stays `killed_timeout`.

Why a second process rather than a timer inside the measurement: the entrypoint is PID 1 of the
container, and the kernel does not deliver to a namespace's PID 1 a signal it has no handler
for, so the measurement cannot end itself with a default SIGTERM, SIGALRM or even SIGKILL of
its own; a timer thread needs the GIL, which native code stuck in a call may hold forever; and
a handler in Python runs only between bytecodes. The supervisor imports nothing but the standard
library before its child runs, does nothing but wait (`sigtimedwait`: no polling), and when it
exits, as PID 1, the kernel ends every other process of the container. It also reaps orphans
that are handed to it, as an init does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

DEADLINE_GRACE_S = 5.0
EXIT_KILLED = 137  # 128 + SIGKILL: what the host reads as a killed run
# The work folder's names (WorkPaths), spelled here so that the supervisor imports no contract
# (pydantic) before its child runs; tests/unit/experiment/test_main.py holds them equal.
WORKDIR = "/llem/work"  # CONTAINER_WORKDIR
CONFIG_FILE = "config.json"
SETTLED_FILES = ("result.json", "error.json")
WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llem-experiment", description=__doc__)
    parser.add_argument("workdir", nargs="?", type=Path, help=f"default: {WORKDIR}")
    parser.add_argument("--fetch", action="store_true", help="Fetch, do not measure.")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="Measure in this process, without a supervisor (what the supervisor starts).",
    )
    args = parser.parse_args(argv)
    workdir: Path = args.workdir or Path(WORKDIR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if args.fetch:
        from llenergymeasure.experiment.fetch import fetch

        return fetch(workdir)
    deadline_s = None if args.in_process else read_deadline(workdir)
    if deadline_s is None:
        from llenergymeasure.experiment.process import measure

        return measure(workdir)
    child = [sys.executable, "-m", "llenergymeasure.experiment", str(workdir), "--in-process"]
    return supervise(child, deadline_s, workdir)


def read_deadline(workdir: Path) -> float | None:
    """config.json's `context.deadline_s`, s; None where it sets none or does not say (the
    measurement reports what is wrong with the file)."""
    try:
        value: Any = json.loads((workdir / CONFIG_FILE).read_bytes())["context"]["deadline_s"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 < value < math.inf else None


def supervise(command: list[str], deadline_s: float, workdir: Path) -> int:
    """Run `command` (argv, absolute executable) as a child in a process group of its own, and
    wait for it; the module docstring says what happens meanwhile and at the deadline."""
    deadline = time.monotonic() + deadline_s
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # taken by sigtimedwait
    try:
        child = os.posix_spawn(command[0], command, os.environ, setpgroup=0, setsigmask=())
        status = _wait(child, deadline, forward=True)
        if status is not None:
            return _exit_code(status)
        settled = any((workdir / name).exists() for name in SETTLED_FILES)
        _kill_group(child, signal.SIGTERM)
        ended = _wait(child, time.monotonic() + DEADLINE_GRACE_S, forward=False)
        _kill_group(child, signal.SIGKILL)  # what is left of the group, the child included
        if ended is None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        if not settled:  # what it wrote on the SIGTERM ("Interrupted") is not why it ended
            _deadline_exceeded(workdir, deadline_s)
        return EXIT_KILLED
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _wait(child: int, until: float, forward: bool) -> int | None:
    """The child's wait status once it exits, or None at `until`. Reaps every other child
    meanwhile (orphans handed to PID 1); passes SIGTERM and SIGINT on when `forward`."""
    while (left := until - time.monotonic()) > 0:
        info = signal.sigtimedwait(WATCHED, left)
        if info is None:
            break
        if info.si_signo == signal.SIGCHLD:
            status = _reap(child)
            if status is not None:
                return status
        elif forward:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, info.si_signo)
    return None


def _reap(child: int) -> int | None:
    """Reap every child that has exited; the wait status of `child` if it is one of them."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == child:
            found = status


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says


def _kill_group(child: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child, sig)


def _deadline_exceeded(workdir: Path, deadline_s: float) -> None:
    from llenergymeasure.contract.workdir import ErrorReport, WorkPaths, atomic_write_json

    message = (
        f"the run passed its deadline, {deadline_s:g} s after its container started (the "
        "host's timeout plus a margin), and its container stopped it: the host, which "
        "normally stops a run at its timeout, did not (llem was killed or lost)"
    )
    report = ErrorReport.capped("DeadlineExceeded", message, "")
    atomic_write_json(workdir / WorkPaths.ERROR, report)
