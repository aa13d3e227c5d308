"""`llem plan` (the installed command, in its own process) on JSON nested deeper than Python's
parser can recurse: one message naming the file and the line, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LLEM = Path(sys.executable).parent / "llem"
DEEP = "[" * 100_000 + "]" * 100_000


def plan(study: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LLEM), "plan", str(study)], capture_output=True, text=True, timeout=120
    )


def test_a_prompt_record_nested_too_deep(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "x": ' + DEEP + "}\n")
    study = tmp_path / "study.yaml"
    study.write_text("model: gpt2\nn_prompts: 2\nprompts: {source: jsonl, path: p.jsonl}\n")
    done = plan(study)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{tmp_path / 'p.jsonl'}: record 2: nested more than 100 levels deep" in done.stderr


def test_a_study_file_written_as_json_nested_too_deep(tmp_path: Path) -> None:
    study = tmp_path / "study.json"
    study.write_text('{\n  "model": "gpt2",\n  "sweep": {"n_prompts": ' + DEEP + "}\n}\n")
    done = plan(study)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{study}:3: nested more than 100 levels deep" in done.stderr
