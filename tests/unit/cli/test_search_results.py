"""`llem results` on a search study, and what `llem run` refuses for one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers.cli import run_llem
from helpers.results import Figures, standard_study
from helpers.simulated import search_run, search_study


def landscape(swept: dict) -> Figures | str:
    n = swept["n_prompts"]
    if n == 9:
        return "Killed"
    return Figures(tokens_per_s=40.0 * n, j_per_token=0.05 * abs(n - 6) + 0.1)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("search")
    study = search_study(
        {
            "objective": {"minimize": "energy.j_per_output_token"},
            "constraints": ["throughput.output_tokens_per_s >= 120"],
            "space": {"n_prompts": {"low": 1, "high": 12}},
            "trials": 12,
            "sampler": "grid",
            "confirm": {"top": 2, "cycles": 3},
        }
    )
    assert search_run(root, study, landscape).run() == 0
    return root / "study"


def test_show_prints_the_trials_the_confirmation_and_the_winner(searched: Path) -> None:
    code, out, err = run_llem("results", "show", str(searched))
    assert code == 0, err
    assert "Search: minimize energy.j_per_output_token (J/token)" in out
    assert "throughput.output_tokens_per_s >= 120" in out
    for state in ("complete", "infeasible", "failed"):
        assert state in out
    assert "best: n_prompts=6" in out and "95 % CI" in out and "verdict:" in out


def test_show_json_has_the_search_with_its_best_and_trials(searched: Path) -> None:
    code, out, err = run_llem("results", "show", str(searched), "--json")
    assert code == 0, err
    data = json.loads(out)
    best = data["search"]["best"]
    assert best["confirmed"] and best["params"] == {"n_prompts": 6} and best["constraints_met"]
    objective = best["objectives"][0]
    assert objective["unit"] == "J/token" and objective["n"] == 3
    assert objective["ci_low"] <= objective["mean"] <= objective["ci_high"]
    trials = data["search"]["trials"]
    assert len(trials) == 12 and {t["state"] for t in trials} == {
        "complete",
        "infeasible",
        "failed",
    }
    assert data["configurations"]  # the usual table is there too


def test_export_trials_and_trials_csv(searched: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "trials.csv"
    code, _, err = run_llem("results", "export", str(searched), "--trials", "-o", str(out_file))
    assert code == 0, err
    rows = list(csv.DictReader(out_file.open()))
    assert len(rows) == 12 and rows[0]["trial"] == "0"
    assert {"n_prompts", "state", "energy.j_per_output_token", "best_so_far", "reason"} <= set(
        rows[0]
    )
    assert "constraint: throughput.output_tokens_per_s >= 120" in rows[0]
    assert (searched / "trials.csv").is_file()  # written with the study's tables at its end


def test_export_trials_of_a_grid_is_refused(tmp_path: Path) -> None:
    code, _, err = run_llem("results", "export", str(standard_study(tmp_path)), "--trials")
    assert code == 2 and "not a search" in err


def test_plots_and_report_have_the_search(searched: Path) -> None:
    code, _, err = run_llem("results", "plot", str(searched))
    assert code == 0, err
    for name in ("search_best_so_far", "search_n_prompts"):
        assert (searched / "plots" / f"{name}.png").is_file()
    code, _, err = run_llem("results", "report", str(searched))
    assert code == 0, err
    html = (searched / "report.html").read_text()
    assert '<section id="search">' in html and "Verdict:" in html
    assert "optimistically biased" in html


def test_a_search_cannot_be_detached(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: s\nmodel: stub:m\nsearch:\n  objective: {minimize: energy.j_per_output_token}\n"
        "  space:\n    n_prompts: [1, 2]\n"
    )
    code, _, err = run_llem("run", str(path), "--executor", "slurm", "--detach", "--yes")
    assert code == 2 and "--detach: a search" in err


def test_the_library_loads_a_search(searched: Path) -> None:
    from llenergymeasure import api

    result = api.load_results(searched)
    assert result.search is not None and result.trials is not None
    assert len(result.trials) == 12
    winner = result.search.cells[0].winner
    assert winner is not None and winner.params == {"n_prompts": 6}


def test_a_search_does_not_retry_its_failed_trials(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: s\nmodel: stub:m\nsearch:\n  objective: {minimize: energy.j_per_output_token}\n"
        "  space:\n    n_prompts: [1, 2]\n"
    )
    code, _, err = run_llem("run", str(path), "--resume", "--retry-failed", "--yes")
    assert code == 2 and "--retry-failed: a search's failed trials are findings" in err
