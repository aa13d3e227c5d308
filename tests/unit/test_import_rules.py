"""The host/container split: import-linter contracts, and no torch on the host at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST_MODULES = [
    "llenergymeasure.cli.app",
    "llenergymeasure.config.loader",
    "llenergymeasure.study",
    "llenergymeasure.study.expand",
    "llenergymeasure.orchestrator",
    "llenergymeasure.results",
]
HEAVY = ["torch", "transformers", "vllm", "tensorrt_llm"]


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    assert lint, "lint-imports (import-linter) is not installed"
    done = subprocess.run(
        [lint, "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_host_modules_do_not_load_inference_libraries() -> None:
    imports = "; ".join(f"import {name}" for name in HOST_MODULES)
    check = f"import sys; {imports}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_contract_loads_only_pydantic_and_stdlib() -> None:
    check = (
        "import sys; before = set(sys.modules); import llenergymeasure.contract; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "allowed = {'llenergymeasure', 'pydantic', 'pydantic_core', 'typing_extensions', "
        "'annotated_types', 'typing_inspection'}; "
        "print(sorted(m for m in new - allowed if m not in sys.stdlib_module_names "
        "and not m.startswith('_')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
