"""load_study + expand: every document mistake is one UserError naming file:line and the path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llenergymeasure.config.loader import load_study
from llenergymeasure.config.study import default_images
from llenergymeasure.errors import UserError
from llenergymeasure.study import expand


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        expand(load_study(path))
    return str(caught.value)


BAD = [
    # (document, expected line, expected fragments)
    ("model: gpt2\nmax_new_tokns: 5\n", 2, ["max_new_tokns", "did you mean 'max_new_tokens'"]),
    ("model: gpt2\nmax_new_tokens: five\n", 2, ["max_new_tokens", "integer", "'five'"]),
    ("model: gpt2\nmax_new_tokens: 0\n", 2, ["max_new_tokens", "greater than 0"]),
    ("model: gpt2\nprecision: fp8\n", 2, ["precision", "'fp8'"]),
    ("model: gpt2\nsweep:\n  max_new_tokens: []\n", 3, ["sweep.max_new_tokens", "empty list"]),
    ("model: gpt2\nsweep:\n  max_new_tokens: [8, -3]\n", 3, ["sweep.max_new_tokens[1]"]),
    ("model: gpt2\nsweep:\n  n_promps: [1]\n", 3, ["did you mean 'n_prompts'"]),
    ("model: gpt2\nsweep:\n  pytorch.batchsize: [1]\n", 3, ["did you mean 'batch_size'"]),
    ("model: gpt2\nsweep:\n  backend: [pytorch, vlm]\n", 3, ["sweep.backend[1]", "'vlm'"]),
    ("model: gpt2\nbase: nothere.yaml\n", 2, ["base", "nothere.yaml", "not found"]),
    ("model: gpt2\nvllm:\n  max_num_seqs: 4\n", 2, ["'vllm:' section", "backend"]),
    (
        "model: gpt2\nexperiments:\n  - backend: pytorch\n    vllm: {max_num_seqs: 4}\n",
        4,
        ["experiments[0].vllm", "backend is pytorch"],
    ),
    ("model: gpt2\nsweep:\n  vllm.max_num_seqs: [1, 2]\n", 3, ["scoped to backend 'vllm'"]),
    ("model: gpt2\n  x: [\n", 2, ["YAML syntax error"]),
    ("model: gpt2\nmodel: gpt3\n", 2, ["duplicate key"]),
    ("model: gpt2\npytorch:\n  batchsize: 4\n", 3, ["pytorch.batchsize", "'batch_size'"]),
    ("model: gpt2\nprompts:\n  source: jsonl\n", 2, ["prompts.path", "required"]),
    ("model: gpt2\nexecution:\n  n_cycles: 0\n", 3, ["execution.n_cycles"]),
    ("model: gpt2\nexecution:\n  cycle_ordr: shuffled\n", 3, ["did you mean 'cycle_order'"]),
    ("model: gpt2\nexecution:\n  gpu_ids: [0, 0]\n", 3, ["execution.gpu_ids", "distinct"]),
    ("model: gpt2\nimages:\n  pytorch: ''\n", 3, ["images.pytorch"]),
    ("model: gpt2\nimages:\n  pytorh: x:1\n", 3, ["did you mean 'pytorch'"]),
    ("model: gpt2\noffline: maybe\n", 2, ["offline", "boolean"]),
    ("model: gpt2\nexperiments: []\n", 2, ["experiments", "non-empty"]),
    ("model: gpt2\nexperiments:\n  - 3\n", 3, ["experiments[0]", "mapping"]),
    ("model: gpt2\n1: 2\n", 2, ["keys must be names"]),
    ("model: !custom gpt2\n", 1, ["unsupported YAML value"]),
    (
        "model: gpt2\nmax_new_tokens: 8\nexperiments:\n  - max_new_tokens: 4\n"
        "    sweep:\n      max_new_tokens: [1, 2]\n",
        4,
        ["experiments[0].max_new_tokens", "also swept by experiments[0].sweep.max_new_tokens"],
    ),
    (
        "model: gpt2\nbackend: vllm\nsweep:\n  vllm.engine.block_size: [8, 16]\n",
        4,
        ["sweep.vllm.engine: unknown key 'engine'", "here it is 'vllm.block_size'"],
    ),
    (
        "model: gpt2\nbackend: vllm\nsweep:\n  vllm:\n    engine:\n      block_size: [8]\n",
        6,
        ["sweep.vllm.engine: unknown key 'engine'", "here it is 'vllm.block_size'"],
    ),
    ("model: gpt2\nn: 100\n", 2, ["n: unknown key 'n'", "here it is 'n_prompts'"]),
    (
        "model: gpt2\nmax_output_tokens: 64\n",
        2,
        ["LLenergyMeasure v0.8's name; here it is 'max_new_tokens'"],
    ),
    (
        "model: gpt2\nexecution:\n  experiment_gap_seconds: 5\n",
        3,
        ["here it is 'execution.gap_between_experiments_s'"],
    ),
    (
        "model: gpt2\nexperiments:\n  - model: a\n    decoder: {temperature: 0}\n",
        4,
        ["experiments[0].decoder: unknown key", "here it is 'decoding'"],
    ),
    ("model: gpt2\nrunners: {vllm: docker}\n", 2, ["no counterpart here: every backend runs"]),
    (
        "model: gpt2\nwarmup:\n  min_batches: 9\n  max_batches: 2\n",
        3,
        ["warmup.min_batches", "must not exceed max_batches"],
    ),
    (
        "model: gpt2\nprompts:\n  input_length: {distribution: uniform, min: 200, max: 100}\n",
        3,
        ["prompts.input_length.min", "must not exceed max"],
    ),
]


@pytest.mark.parametrize(("document", "line", "fragments"), BAD)
def test_document_mistake_names_file_line_and_path(
    tmp_path: Path, document: str, line: int, fragments: list[str]
) -> None:
    path = write(tmp_path, document)
    message = error_of(path)
    assert message.startswith(f"{path}:{line}"), message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_required_model_names_the_key(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "max_new_tokens: 3\n"))
    assert "model: required but not set" in message


def test_empty_and_non_mapping_documents(tmp_path: Path) -> None:
    assert "empty" in error_of(write(tmp_path, "# nothing\n"))
    assert "mapping of keys" in error_of(write(tmp_path, "- a\n- b\n"))


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in error_of(tmp_path / "absent.yaml")


def test_error_in_base_file_names_the_base_file(tmp_path: Path) -> None:
    write(tmp_path, "precision: bf16\nwarmup:\n  max_batchs: 3\n", name="common/base.yaml")
    path = write(tmp_path, "base: common/base.yaml\nmodel: gpt2\n")
    message = error_of(path)
    assert "common/base.yaml:3" in message
    assert "did you mean 'max_batches'" in message


def test_value_supplied_by_base_is_located_in_base(tmp_path: Path) -> None:
    write(tmp_path, "precision: bf16\nn_prompts: -1\n", name="base.yaml")
    message = error_of(write(tmp_path, "base: base.yaml\nmodel: gpt2\n"))
    assert message.startswith(f"{tmp_path / 'base.yaml'}:2: n_prompts")


def test_base_file_may_not_hold_study_keys(tmp_path: Path) -> None:
    write(tmp_path, "sweep: {n_prompts: [1]}\n", name="base.yaml")
    assert "belongs in the study file" in error_of(write(tmp_path, "base: base.yaml\nmodel: m\n"))


def test_base_merged_under_defaults_and_entries_over_both(tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        n_prompts: 7
        max_new_tokens: 9
        decoding: {temperature: 0.5, top_p: 0.9}
        """,
        name="base.yaml",
    )
    path = write(
        tmp_path,
        """
        base: base.yaml
        model: gpt2
        max_new_tokens: 11
        experiments:
          - decoding: {temperature: 0.8}
        """,
    )
    study = load_study(path)
    [planned] = expand(study).configs
    config = planned.config
    assert (config.n_prompts, config.max_new_tokens) == (7, 11)
    assert (config.decoding.temperature, config.decoding.top_p) == (0.8, 0.9)
    assert study.source_text == path.read_text()
    assert study.base_path == (tmp_path / "base.yaml").resolve()
    assert study.base_text is not None and "n_prompts: 7" in study.base_text


def test_study_level_defaults(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, "model: gpt2\nimages: {vllm: my/vllm:1}\n"))
    assert study.name == "study"
    assert study.output_dir == "llem-results"
    assert study.offline is False
    assert study.images == {**default_images(), "vllm": "my/vllm:1"}
    assert study.execution.gpu_ids == [0]
    assert study.execution.n_cycles == 1


def test_prompts_block_without_source_is_synthetic(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m\nprompts:\n  input_length: {tokens: 64}\n")
    [planned] = expand(load_study(path)).configs
    assert planned.config.prompts.source == "synthetic"
    assert planned.config.prompts.input_length.distribution == "fixed"


def test_retagged_block_replaces_rather_than_merges(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        model: m
        prompts: {source: synthetic, seed: 3}
        experiments:
          - prompts: {source: jsonl, path: /data/p.jsonl}
        """,
    )
    [planned] = expand(load_study(path)).configs
    assert planned.config.prompts.source == "jsonl"
