"""`llem plan`, `llem config validate`, `llem --version` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_llem as llem
from llenergymeasure.version import __version__

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


EXPECTED = {
    "single-backend-sweep.yaml": (6, 3, 18),
    "mixed-backends.yaml": (14, 2, 28),
    "experiments-list.yaml": (6, 2, 12),
    "power-limit-sweep.yaml": (5, 3, 15),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_plans(name: str) -> None:
    code, out, err = llem("plan", str(ROOT / "examples" / name), "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["n_configs"], plan["n_cycles"], plan["n_runs"]) == EXPECTED[name]
    assert plan["skipped"] == []
    assert len({run["run_id"] for run in plan["runs"]}) == plan["n_runs"]


def test_every_example_file_is_covered_or_plans() -> None:
    for path in EXAMPLES:
        code, _, err = llem("config", "validate", str(path))
        assert code == 0, (path, err)


def test_mixed_example_scopes_dimensions_per_backend() -> None:
    _, out, _ = llem("plan", str(ROOT / "examples" / "mixed-backends.yaml"), "--json")
    plan = json.loads(out)
    backends = [c["config"]["backend"] for c in plan["configs"]]
    assert backends.count("pytorch") == 6 and backends.count("vllm") == 4
    assert set(plan["images"]) == {"pytorch", "vllm", "tensorrt"}
    assert plan["estimated_wall_time"]["total_s"] > 0


def test_plan_table_names_totals_images_estimate_and_skips(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        "model: m\ndecoding: {top_p: 0.9}\n"
        "sweep:\n  decoding.temperature: [0, 0.7]\n  max_new_tokens: [8, 16]\n"
        "execution: {n_cycles: 3}\n"
    )
    code, out, err = llem("plan", str(study))
    assert code == 0, err
    assert "2 configurations x 3 cycles = 6 runs" in out
    assert "llenergymeasure/pytorch:" in out
    assert "Estimated wall time" in out
    assert "Skipped 2 invalid combinations" in out
    assert "decoding.temperature=0" in out


def test_a_gpu_window_too_short_to_be_valid_is_said_at_plan_time(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("model: m\nsweep:\n  min_window_s: [5, 20]\n")
    code, out, err = llem("plan", str(study))
    assert code == 0, err
    assert "min_window_s 5 s is under 10 s" in out and "window_short" in out
    code, out, err = llem("plan", str(study), "--json")
    (note,) = json.loads(out)["notes"]
    assert note.startswith("min_window_s 5 s is under 10 s")
    study.write_text("model: m\ngpu_count: 0\nmin_window_s: 0.5\n")  # no GPU energy to judge
    code, out, err = llem("plan", str(study), "--json")
    assert json.loads(out)["notes"] == []


def test_large_plan_shows_summary_and_first_rows(tmp_path: Path) -> None:
    study = tmp_path / "big.yaml"
    study.write_text(
        "model: m\nsweep:\n  n_prompts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
        "  max_new_tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
        "execution: {n_cycles: 10}\n"
    )
    code, out, _ = llem("plan", str(study), "--rows", "5")
    assert code == 0
    assert "100 configurations x 10 cycles = 1000 runs" in out
    assert "995 more runs" in out
    assert "ask for --yes" in out
    assert len(out.splitlines()) < 40


def test_config_validate_reports_counts(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("model: m\nsweep: {n_prompts: [1, 2]}\n")
    code, out, _ = llem("config", "validate", str(study))
    assert code == 0
    assert "2 configurations x 1 cycles = 2 runs" in out


def test_config_validate_error_is_one_message(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("model: m\nmax_new_tokns: 3\n")
    code, _, err = llem("config", "validate", str(study))
    assert code == 2
    assert err.startswith(f"error: {study}:2: max_new_tokns: unknown key")
    assert "Traceback" not in err


def test_config_validate_reads_the_prompt_files_as_plan_does(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("model: m\nn_prompts: 2\nprompts: {source: jsonl, path: p.jsonl}\n")
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\nnot json\n')
    validated = llem("config", "validate", str(study))
    planned = llem("plan", str(study))
    assert validated[0] == planned[0] == 2
    assert str(tmp_path / "p.jsonl") in validated[2] and "Traceback" not in validated[2]


def test_version_and_help() -> None:
    code, out, _ = llem("--version")
    assert code == 0 and out.strip() == f"llem {__version__}"
    code, out, _ = llem("plan", "--help")
    assert code == 0 and "--json" in out


def test_cycles_and_order_override_the_file(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text("model: gpt2\nsweep:\n  n_prompts: [1, 2]\nexecution: {n_cycles: 1}\n")
    code, out, _ = llem("plan", str(study), "--json", "--cycles", "3", "--order", "sequential")
    assert code == 0
    plan = json.loads(out)
    assert (plan["n_runs"], plan["execution"]["cycle_order"]) == (6, "sequential")
    assert [r["config_index"] for r in plan["runs"]] == [0, 0, 0, 1, 1, 1]
    code, _, err = llem("plan", str(study), "--order", "random")
    assert code == 2 and "--order 'random': not an order" in err
    code, _, err = llem("run", str(study), "--dry-run", "--cycles", "0")
    assert code == 2


def test_a_top_level_backend_list_sweeps_backends(tmp_path: Path) -> None:
    # LLenergyMeasure's multi-backend form: backend-scoped dimensions add, they do not multiply
    study = tmp_path / "s.yaml"
    study.write_text(
        "model: gpt2\nbackend: [pytorch, vllm]\nsweep:\n  precision: [fp16, bf16]\n"
        "  pytorch.batch_size: [1, 8]\n  vllm.max_num_seqs: [64, 256]\n"
    )
    code, out, err = llem("plan", str(study), "--json")
    assert code == 0, err
    configs = json.loads(out)["configs"]
    assert [c["config"]["backend"] for c in configs] == ["pytorch"] * 4 + ["vllm"] * 4
    assert all(c["origin"] == "grid" for c in configs)
    study.write_text("model: gpt2\nbackend: [pytorch, vllm]\nsweep:\n  backend: [vllm]\n")
    code, _, err = llem("plan", str(study))
    assert code == 2
    assert f"{study}:2: backend: a list sweeps backends" in err and f"({study}:4)" in err


def test_serving_plan_sweeps_rates_and_skips_a_backend_without_a_server(tmp_path) -> None:
    study = tmp_path / "serving.yaml"
    study.write_text(
        "name: s\nmodel: m\nmode: serving\ngpu_count: 0\n"
        "serving: {n_requests: 100, slo: {ttft_ms: 500}}\n"
        "sweep:\n  backend: [vllm, pytorch]\n  serving.request_rate: [1, 4, .inf]\n"
        "execution: {executor: slurm, slurm: {partition: gpu, max_concurrent_jobs: 4}}\n"
    )
    code, out, err = llem("plan", str(study), "--json")
    assert code == 0, err
    plan = json.loads(out)
    rates = [config["swept"]["serving.request_rate"] for config in plan["configs"]]
    assert rates == [1, 4, "inf"]  # .inf written in YAML: 'inf'
    assert len(plan["skipped"]) == 3
    assert all("fastapi and uvicorn" in s["reason"] for s in plan["skipped"])
    code, out, _ = llem("plan", str(study))
    assert "runs as Slurm jobs (partition gpu, exclusive nodes, at most 4 at once)" in out


def test_serving_mistakes_are_one_message_naming_the_key(tmp_path) -> None:
    study = tmp_path / "bad.yaml"
    for body, expected in (
        ("serving: {n_requests: 5, request_rate: -2}", "serving.request_rate"),
        ("serving: {n_requests: 5, slo: {p99_ms: 3}}", "serving.slo.p99_ms"),
        ("serving: {request_rate: 2}", "n_requests or duration_s"),
    ):
        study.write_text(f"name: s\nmodel: m\nbackend: vllm\ngpu_count: 0\nmode: serving\n{body}\n")
        code, _, err = llem("config", "validate", str(study))
        assert code == 2 and expected in err and "Traceback" not in err, err


def test_stage_mistakes_are_refused_at_plan_time_with_the_stage_named(tmp_path) -> None:
    study = tmp_path / "bad.yaml"
    for body, expected in (
        (
            "serving:\n  stages:\n    - {request_rate: 1, n_requests: 20}\n"
            "    - {request_rate: 4}\n",
            "stage 1 never ends",
        ),
        ("serving: {duration_s: 9, find_max_rate: {low: 1, high: 8}}", "give serving.slo"),
        (
            "serving: {duration_s: 9, request_rate: 3, stages: [{request_rate: 1}]}",
            "remove serving.request_rate",
        ),
    ):
        study.write_text(f"name: s\nmodel: m\nbackend: vllm\ngpu_count: 0\nmode: serving\n{body}\n")
        code, _, err = llem("plan", str(study))
        assert code == 2 and expected in err and "Traceback" not in err, err
        assert "bad.yaml" in err
