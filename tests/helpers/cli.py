"""`llem` in this process: the command line as a user types it, its exit code and output."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path
from unittest import mock

from llenergymeasure.cli.entry import main


def run_llem(*args: str, **environment: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `llem ARGS`; `environment` is added to os.environ for
    the call. Output is as wide as a wide terminal's, so no table wraps."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.object(sys, "argv", ["llem", *args]),
        mock.patch.dict(os.environ, {"COLUMNS": "250", **environment}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
    return code, out.getvalue(), err.getvalue()


def plan_quickly(folder: Path, text: str) -> tuple[int, str]:
    """`llem plan` of a study file with `text`: its exit code and stderr, asserting it answered
    within 10 s (a refusal that comes after the work it guards against is no refusal)."""
    path = folder / "study.yaml"
    path.write_text(text)
    started = time.monotonic()
    code, _, err = run_llem("plan", str(path))
    assert time.monotonic() - started < 10, "refused, but not before the work was done"
    return code, err
