"""`llem node-run`, started once per run by every cluster job, goes straight to its executor
without loading the rest of the command line; everything else goes through the typer app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.cli import run_llem
from llenergymeasure.cli.entry import _node_run


def test_only_a_job_scripts_node_run_line_takes_the_short_way() -> None:
    for args in ([], ["plan", "s.yaml"], ["node-run", "--help"], ["node-run", "slurm"]):
        assert _node_run(args) is None
    assert _node_run(["node-run", "slurm", "/study", "--help"]) is None


def test_node_run_outside_a_job_is_one_message_and_exit_2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    code, _, err = run_llem("node-run", "slurm", str(tmp_path), str(tmp_path / "runs"))
    assert code == 2
    assert "runs inside a Slurm array job" in err and "Traceback" not in err
    code, _, err = run_llem("node-run", "nosuch", str(tmp_path), "x")
    assert code == 2 and "nosuch" in err


def test_node_run_loads_neither_typer_nor_the_other_commands(tmp_path: Path) -> None:
    probe = (
        "import sys; from llenergymeasure.cli.entry import main\n"
        f"sys.argv = ['llem', 'node-run', 'slurm', {str(tmp_path)!r}, 'runs']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    print('exit', done.code)\n"
        "heavy = ['typer', 'llenergymeasure.cli.app', 'llenergymeasure.results.load', 'pandas',"
        " 'scipy', 'optuna', 'matplotlib']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert done.stdout.splitlines() == ["exit 2", "[]"], done.stdout + done.stderr
