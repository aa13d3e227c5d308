"""Bounds on what a study file may cost to read and plan, and text from outside made harmless
for a terminal, a spreadsheet and the report (README: Security)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from results_fixtures import Figures, pytorch_config, write_study
from test_cli_plan import llem

from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.results.export import RESULTS_CSV, write_study_outputs
from llenergymeasure.results.report import write_report
from llenergymeasure.study.untrusted import printable


def _plan(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    started = time.monotonic()
    code, _, err = llem("plan", str(path))
    assert time.monotonic() - started < 10, "refused, but not before the work was done"
    return code, err


def test_yaml_aliases_that_expand_exponentially_are_one_message(tmp_path: Path) -> None:
    # 370 bytes that expand to 2.3 million values when every alias is followed.
    lines = ["a: &a [x, x, x, x, x, x, x, x]"]
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}]")
    lines.append("model: [*g, *g, *g, *g, *g, *g, *g, *g, *g]")
    code, err = _plan(tmp_path, "\n".join(lines) + "\n")
    assert code == 2 and "expands to more than 100,000 values" in err
    assert "Traceback" not in err


def test_a_study_file_above_its_size_cap_is_refused(tmp_path: Path) -> None:
    code, err = _plan(tmp_path, "model: m\n" + "# padding\n" * 500_000)
    assert code == 2 and "at most 4 MiB" in err


def test_cycles_and_runs_have_upper_bounds(tmp_path: Path) -> None:
    code, err = _plan(tmp_path, "model: m\nexecution: {n_cycles: 1000000000}\n")
    assert code == 2 and "n_cycles" in err and "10000" in err
    # 1.6 million configurations: refused before one is built, naming the sweep's line
    sweep = (
        "model: m\nsweep:\n"
        "  n_prompts: [" + ", ".join(str(n) for n in range(1, 41)) + "]\n"
        "  max_new_tokens: [" + ", ".join(str(n) for n in range(1, 201)) + "]\n"
        "  precision: [fp16, bf16, fp32]\n"
        "  pytorch.batch_size: [" + ", ".join(str(n) for n in range(1, 68)) + "]\n"
    )
    code, err = _plan(tmp_path, sweep)
    assert code == 2 and "plans 1,608,000 runs" in err and "study.yaml:2" in err
    assert "above the 100,000" in err


def test_a_scoped_sweep_multiplies_only_its_backend_when_counted(tmp_path: Path) -> None:
    # 2 x 400 + 2 x 400 = 1,600 configurations x 50 cycles = 80,000 runs: within the bound
    # (counting every scoped key against every backend would make it 160,000 x 50).
    text = (
        "model: m\nbackend: [pytorch, vllm]\nexecution: {n_cycles: 50}\nsweep:\n"
        "  precision: [fp16, bf16]\n"
        "  pytorch.batch_size: [" + ", ".join(str(n) for n in range(1, 401)) + "]\n"
        "  vllm.max_num_seqs: [" + ", ".join(str(n) for n in range(1, 401)) + "]\n"
    )
    from llenergymeasure.config.loader import load_study
    from llenergymeasure.study.expand import _combination_count, _sources

    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert sum(_combination_count(s) for s in _sources(load_study(path))) == 1600


def test_a_serving_run_sends_at_most_a_million_requests() -> None:
    def serving(**load: object) -> ExperimentConfig:
        return ExperimentConfig.model_validate(
            {"model": "m", "backend": "vllm", "mode": "serving", "serving": load}
        )

    with pytest.raises(ValueError, match="above the 1,000,000 a serving run may send"):
        serving(request_rate=1e9, duration_s=3600)
    with pytest.raises(ValueError, match="less than or equal to 1000000"):
        serving(n_requests=10**7)
    assert serving(request_rate=100, duration_s=600).serving.duration_s == 600


def test_printable_removes_escape_sequences_and_control_characters() -> None:
    hostile = "ok\x1b]0;pwned\x07 \x1b[2J\x1b[31mred\x1b[0m\x1b]52;c;c2VjcmV0\x1b\\ bell\x07\r\n"
    assert printable(hostile) == "ok red bell\n"
    assert printable("tab\tand\nnewline stay; ünïcode too") == "tab\tand\nnewline stay; ünïcode too"


def test_csv_cells_a_spreadsheet_would_run_are_inert(tmp_path: Path) -> None:
    configs = [({"pytorch.batch_size": 1}, pytorch_config(1, model='=HYPERLINK("x")'))]
    hostile = '=cmd|" /C calc"!A0'
    study = write_study(
        tmp_path, configs, 2, lambda ci, cy: hostile if cy else Figures(tokens_per_s=1.0)
    )
    write_study_outputs(study)
    frame = pd.read_csv(study / RESULTS_CSV)
    assert set(frame["error"].dropna()) == {"'" + hostile}
    assert not any(str(cell).startswith(("=", "+", "@")) for cell in frame.to_numpy().ravel())
    numbers = [c for c in frame.columns if c.endswith("tokens_per_s")]
    assert numbers and all(frame[c].dtype.kind == "f" for c in numbers)  # numbers stay numbers


def test_the_reports_styles_survive_escaping(tmp_path: Path) -> None:
    configs = [({"pytorch.batch_size": 1}, pytorch_config(1))]
    study = write_study(tmp_path, configs, 1, lambda ci, cy: Figures(tokens_per_s=1.0))
    html = write_report(study).read_text(encoding="utf-8")
    assert 'font-family:system-ui,-apple-system,"Segoe UI",sans-serif' in html
    assert "&#34;Segoe UI&#34;" not in html
