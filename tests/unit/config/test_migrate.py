"""`llem config migrate`: LLenergyMeasure v0.8 files (written for these tests in its grammar, as
its docs describe it) become study files of ours that validate, with every key not carried over
listed with its line and reason."""

from __future__ import annotations

import json
from pathlib import Path

from ruamel.yaml import YAML

from helpers.cli import run_llem as llem

PEER = Path(__file__).parent / "peer_files"


def _migrate(tmp_path: Path, name: str) -> tuple[int, str, Path]:
    target = tmp_path / f"{name}.llem.yaml"
    code, out, err = llem("config", "migrate", str(PEER / f"{name}.yaml"), "-o", str(target))
    return code, out + err, target


def test_a_study_with_a_grid_and_a_list_migrates_whole_and_keeps_its_meaning(
    tmp_path: Path,
) -> None:
    code, out, target = _migrate(tmp_path, "grid-and-list")
    assert code == 0, out
    assert "every key was carried over" in out
    text = target.read_text()
    assert "# prompts per experiment" in text and "# cool the GPU" in text  # comments kept
    data = YAML(typ="safe").load(text)
    assert data["n_prompts"] == 40 and data["max_new_tokens"] == 32
    assert data["decoding"] == {"temperature": 0.0, "seed": 7}  # preset written out
    assert data["warmup"] == {"min_batches": 3, "cv_bound": 0.1}
    assert data["baseline"] == {"duration_s": 5}
    assert data["sweep"] == {"precision": ["fp16", "bf16"], "n_prompts": [20, 40]}
    entry = data["experiments"][0]
    assert entry["vllm"] == {"max_num_seqs": 64, "enforce_eager": True}
    assert entry["max_new_tokens"] == 16
    assert data["execution"]["gap_between_experiments_s"] == 5
    assert data["execution"]["gap_between_cycles_s"] == 10
    code, out, _ = llem("config", "validate", str(target))
    assert code == 0, out
    # the grid (2 x 2) first, then the entry once: v0.8's meaning of sweep + experiments
    code, out, _ = llem("plan", str(target), "--json")
    plan = json.loads(out)
    assert plan["n_configs"] == 5
    assert [c["origin"] for c in plan["configs"]] == ["grid"] * 4 + ["experiments[0]"]


def test_keys_without_counterpart_are_listed_with_line_and_reason(tmp_path: Path) -> None:
    code, out, target = _migrate(tmp_path, "experiment-with-peer-only-keys")
    assert code == 0, out
    listed = [line.strip() for line in out.splitlines() if "-keys.yaml:" in line]
    paths = [line.split(": ")[1] for line in listed]
    assert paths == [
        "dataset",
        "energy",
        "runners",
        "decoder.do_sample",
        "decoder.min_p",
        "vllm.engine.swap_space",
        "vllm.sampling.presence_penalty",
        "execution.skip_preflight",
    ]
    assert listed[0].startswith(f"{PEER / 'experiment-with-peer-only-keys.yaml'}:6: dataset: ")
    assert "images: {'vllm': 'registry.example/vllm:custom'}" in out
    data = YAML(typ="safe").load(target.read_text())
    assert data["name"] == "experiment-with-peer-only-keys"  # a single experiment: a study of one
    assert data["vllm"] == {"block_size": 16}
    assert data["decoding"] == {"temperature": 0.7}
    assert llem("config", "validate", str(target))[0] == 0


def test_a_file_that_is_no_study_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    for text in ("- a\n- b\n", "name: x\nprecision: bf16\n"):
        old = tmp_path / "old.yaml"
        old.write_text(text)
        code, _, err = llem("config", "migrate", str(old))
        assert code == 2 and "not a LLenergyMeasure study or experiment file" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["old.yaml"]
