"""`llem results` on a search study, and what `llem run` refuses for one."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from helpers.cli import run_llem
from helpers.races import raced
from helpers.results import Figures, standard_study
from helpers.simulated import search_run, search_study
from llenergymeasure.cli.search_show import print_search
from llenergymeasure.results.load import load_study_results
from llenergymeasure.results.search import SearchView, search_view


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
            "confirm": {"top": 2},
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
    assert objective["unit"] == "J/token" and objective["n"] == 2
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
    assert "equivalence margin of 5%" in html and "Runs spent:" in html


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


# ------------------------------------------------------------------------------------------------
# the race: its candidates, rounds, verdict and the runs spent


@pytest.fixture(scope="module")
def settled(tmp_path_factory) -> Path:
    """A race with a winner, one candidate within the margin of it and one eliminated."""
    return raced(tmp_path_factory.mktemp("settled"), "settled")


@pytest.fixture(scope="module")
def undecided(tmp_path_factory) -> Path:
    """A race whose budget ran out before it told its two candidates apart."""
    return raced(tmp_path_factory.mktemp("undecided"), "undecided")


def _view(study_dir: Path) -> SearchView:
    view = search_view(load_study_results(study_dir))
    assert view is not None
    return view


def _hashes(view: SearchView) -> dict[int, str]:
    return {c.params["n_prompts"]: c.config_hash for c in view.cells[0].confirmed}


def _words(text: str) -> str:
    """Text with its wrapping undone (rich wraps long lines at spaces)."""
    return " ".join(text.split())


def test_show_prints_the_race_its_rounds_its_verdict_and_the_runs_spent(settled: Path) -> None:
    code, out, err = run_llem("results", "show", str(settled))
    assert code == 0, err
    view = _view(settled)
    cell = view.cells[0]
    h = {n: key[:8] for n, key in _hashes(view).items()}
    text = _words(out)
    assert f"verdict: {cell.verdict.text}" in text
    assert (
        cell.verdict.text
        == f"{h[4]} (n_prompts=4); {h[3]} (n_prompts=3) is not told apart from it by more than 5%"
    )
    assert "race: fresh runs of the best configurations (margin 5%)" in text
    rows = {line.split()[0]: line.rstrip() for line in out.splitlines() if line.strip()}
    assert rows[h[4]].endswith("│ leader")
    assert rows[h[3]].endswith("│ not told apart from the leader by more than 5%")
    assert f"│ eliminated in round 2: worse than {h[4]} by more than 5%" in rows[h[5]]
    assert (
        f"round 2 (6 runs): leader {h[4]}; eliminated {h[5]} (worse than {h[4]} by more than "
        f"5% (one-sided 95 % confidence)); within the margin {h[3]}; ended: settled"
    ) in text
    runs = cell.runs
    assert (
        f"runs spent: {sum(runs.values())} runs: {runs['search']} search, {runs['remeasure']} "
        f"re-measurement, 6 confirmation (grid: 6 configurations)"
    ) in text


def test_show_of_a_race_its_budget_ended_says_no_clear_winner_and_what_would_settle_it(
    undecided: Path,
) -> None:
    code, out, err = run_llem("results", "show", str(undecided))
    assert code == 0, err
    text = _words(out)
    assert "verdict: no clear winner:" in text and "best:" not in text
    assert "more runs each" in text and "ended: budget: 4 of confirm.max_runs 4 spent" in text
    assert "runs spent: 10 runs: 6 search, 0 re-measurement, 4 confirmation" in text


def test_the_race_reads_at_100_columns(settled: Path, undecided: Path) -> None:
    for study_dir in (settled, undecided):
        buffer = io.StringIO()
        print_search(Console(file=buffer, width=100, highlight=False), _view(study_dir))
        lines = buffer.getvalue().splitlines()
        assert max(len(line) for line in lines) <= 100
        assert not any("…" in line for line in lines)  # no header or cell cut short


def test_report_shows_the_verdict_the_race_the_rounds_and_the_runs_spent(settled: Path) -> None:
    code, _, err = run_llem("results", "report", str(settled))
    assert code == 0, err
    html = (settled / "report.html").read_text()
    view = _view(settled)
    cell = view.cells[0]
    h = {n: key[:8] for n, key in _hashes(view).items()}
    assert f"Verdict: {cell.verdict.text}." in html
    assert "energy.j_per_output_token (J/token) mean [95 % CI]" in html
    assert "<td>leader</td>" in html
    assert "<td>not told apart from the leader by more than 5%</td>" in html
    assert (
        f"<td>eliminated in round 2: worse than {h[4]} by more than 5% "
        "(one-sided 95 % confidence)</td>" in html
    )
    assert f"<li>round 2 (6 runs): leader {h[4]}; eliminated {h[5]} (worse than" in html
    assert "<p>Runs spent: " in html and "6 confirmation (grid: 6 configurations); cost: " in html
    assert "(modelled from the mean run)" in html
    assert "equivalence margin of 5%" in html


def test_show_json_has_the_verdict_the_rounds_and_the_runs(settled: Path, undecided: Path) -> None:
    code, out, err = run_llem("results", "show", str(settled), "--json")
    assert code == 0, err
    search = json.loads(out)["search"]
    hashes = _hashes(_view(settled))
    assert search["space_size"] == 6
    [cell] = search["cells"]
    verdict = cell["verdict"]
    assert verdict["kind"] == "equivalent" and verdict["leader"] == hashes[4]
    assert (
        verdict["tolerance"] == 0.05 and "not told apart from it by more than 5%" in verdict["text"]
    )
    [equivalent] = verdict["equivalent"]
    assert equivalent["params"] == {"n_prompts": 3}
    [difference] = equivalent["differences"]
    assert difference["relation"] == "within"
    assert difference["ci_low"] <= difference["relative"] <= difference["ci_high"]
    assert verdict["undecided"] == []
    assert verdict["eliminated"][hashes[5]].startswith("worse than")
    assert [r["round"] for r in cell["rounds"]] == [0, 1, 2]
    assert cell["rounds"][2]["eliminated"] == verdict["eliminated"]
    assert cell["rounds"][2]["ended"] == "settled"
    assert cell["runs"]["confirmation"] == 6 and cell["runs"]["search"] == 6
    assert search["best"]["params"] == {"n_prompts": 4}
    code, out, err = run_llem("results", "show", str(undecided), "--json")
    assert code == 0, err
    verdict = json.loads(out)["search"]["cells"][0]["verdict"]
    assert verdict["kind"] == "no_clear_winner" and json.loads(out)["search"]["best"] is None
    [standing] = verdict["undecided"]
    assert standing["params"]["n_prompts"] in (4, 5) and standing["runs_to_settle"] > 2


def test_a_reason_from_the_manifest_is_shown_as_text(settled: Path, tmp_path: Path) -> None:
    """The manifest is untrusted: a planted reason prints as itself, no markup or control
    sequence taken from it."""
    study_dir = tmp_path / "study"
    shutil.copytree(settled, study_dir)
    manifest = study_dir / "manifest.jsonl"
    planted = "[bold red]planted[/bold red]\x1b[2J"
    lines = []
    for line in manifest.read_text().splitlines():
        entry = json.loads(line)
        if entry["kind"] == "race":
            entry["eliminated"] = {key: planted for key in entry["eliminated"]}
        lines.append(json.dumps(entry, separators=(",", ":")))
    manifest.write_text("\n".join(lines) + "\n")
    code, out, err = run_llem("results", "show", str(study_dir))
    assert code == 0, err
    assert "\x1b" not in out
    assert "eliminated in round 2: [bold red]planted[/bold red]" in out
