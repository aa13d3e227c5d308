"""Prompt sources and the backend registry."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llenergymeasure.backends.registry import BackendUnavailable, get_backend
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.contract.prompt_files import MAX_PROMPT_FILE_BYTES
from llenergymeasure.contract.prompt_sources import PROMPT_SOURCES
from llenergymeasure.contract.workdir import ErrorReport
from llenergymeasure.experiment import prompts as prompts_module
from llenergymeasure.experiment.prompts import PromptError, tokenised_prompts


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path):  # -> PyTorchBackend
    b = get_backend("pytorch")
    b.load_tokenizer(ExperimentConfig(model=str(tiny_model_dir), gpu_count=0), offline=True)
    return b


def _config(model: Path, **fields) -> ExperimentConfig:
    return ExperimentConfig(model=str(model), gpu_count=0, **fields)


def test_synthetic_lengths_are_exact_in_model_tokens(backend, tiny_model_dir: Path) -> None:
    spec = {
        "source": "synthetic",
        "seed": 7,
        "input_length": {"distribution": "uniform", "min": 3, "max": 40},
    }
    config = _config(tiny_model_dir, prompts=spec, n_prompts=20)
    ids = tokenised_prompts(config, backend, offline=True).ids
    assert [len(p) for p in ids] == config.prompts.input_lengths(
        config.n_prompts, config.max_input_tokens
    )
    assert not set().union(*map(set, ids)) & backend.special_token_ids()
    # Same seed, same prompts; another seed, other prompts.
    assert tokenised_prompts(config, backend, offline=True).ids == ids
    other = _config(tiny_model_dir, prompts={**spec, "seed": 8}, n_prompts=20)
    assert tokenised_prompts(other, backend, offline=True).ids != ids


def test_normal_lengths_are_clipped(tiny_model_dir: Path) -> None:
    spec = {
        "source": "synthetic",
        "input_length": {"distribution": "normal", "mean": 20, "std": 50, "min": 5, "max": 30},
    }
    config = _config(tiny_model_dir, prompts=spec, n_prompts=200)
    lengths = config.prompts.input_lengths(config.n_prompts, config.max_input_tokens)
    assert min(lengths) == 5 and max(lengths) == 30


def test_jsonl_prompts_truncated(backend, tiny_model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    lines = [json.dumps({"q": "energy " * (k + 1)}) for k in range(4)]
    path.write_text("\n".join(lines) + "\n")
    config = _config(
        tiny_model_dir,
        prompts={"source": "jsonl", "path": str(path), "field": "q"},
        n_prompts=4,
        max_input_tokens=3,
    )
    ids = tokenised_prompts(config, backend, offline=True).ids
    assert len(ids) == 4 and max(map(len, ids)) == 3


def test_jsonl_errors_name_the_line(backend, tiny_model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{"other": 1}\n')
    config = _config(tiny_model_dir, prompts={"source": "jsonl", "path": str(path)}, n_prompts=2)
    with pytest.raises(PromptError, match=r"p.jsonl: record 2: has no string field 'prompt'"):
        tokenised_prompts(config, backend, offline=True)
    short = _config(tiny_model_dir, prompts={"source": "jsonl", "path": str(path)}, n_prompts=5)
    path.write_text('{"prompt": "a"}\n')
    with pytest.raises(PromptError, match=r"gives 1 request\(s\) but n_prompts is 5"):
        tokenised_prompts(short, backend, offline=True)


def test_local_hf_dataset_folder(backend, tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    folder = tmp_path / "dataset"
    folder.mkdir()
    rows = [json.dumps({"text": f"watts and joules {k}", "id": k}) for k in range(6)]
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    source = {"source": "hf_dataset", "name": str(folder), "split": "train", "field": "text"}
    ids = tokenised_prompts(
        _config(tiny_model_dir, prompts=source, n_prompts=4), backend, offline=True
    ).ids
    assert len(ids) == 4
    assert backend.decode(ids[2]).strip().endswith("2")
    wrong = _config(tiny_model_dir, prompts={**source, "field": "prompt"}, n_prompts=4)
    with pytest.raises(PromptError, match="has no field 'prompt'"):
        tokenised_prompts(wrong, backend, offline=True)
    too_many = _config(tiny_model_dir, prompts=source, n_prompts=9)
    with pytest.raises(PromptError, match="has 6 rows but n_prompts is 9"):
        tokenised_prompts(too_many, backend, offline=True)


@pytest.mark.parametrize(
    ("name", "module", "image"),
    [
        ("vllm", "vllm", "llenergymeasure/vllm"),
        ("tensorrt", "tensorrt_llm", "llenergymeasure/tensorrt"),
    ],
)
def test_backends_without_their_engine_name_their_image(name: str, module: str, image: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    config = ExperimentConfig(model="m", backend=name, gpu_count=1)
    with pytest.raises(BackendUnavailable, match=image):
        get_backend(name).load(config, offline=True, longest_prompt_tokens=8)


def _serving(model: Path, prompts: dict, **fields) -> ExperimentConfig:
    return ExperimentConfig(
        model=str(model),
        backend="vllm",
        mode="serving",
        gpu_count=0,
        prompts=prompts,
        serving={"n_requests": 4, **fields.pop("serving", {})},
        **fields,
    )


def test_sharegpt_gives_prompt_text_and_answer_lengths_in_model_tokens(
    backend, tiny_model_dir: Path, tmp_path: Path
) -> None:
    records = [
        {"conversations": [{"from": "human", "value": "how much energy"}]},  # skipped
        {"conversations": [{"from": "human", "value": "watts?"}, {"from": "gpt", "value": "a b"}]},
        {"conversations": [{"from": "human", "value": "joules"}, {"from": "gpt", "value": "c"}]},
    ]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(records))
    config = _serving(tiny_model_dir, {"source": "sharegpt", "path": str(path)}, n_prompts=2)
    prompts = tokenised_prompts(config, backend, offline=True)
    assert prompts.texts == ["watts?", "joules"]
    assert prompts.output_tokens == [
        len(backend.encode("a b", add_special_tokens=False)),
        len(backend.encode("c", add_special_tokens=False)),
    ]
    assert prompts.ids[0] == backend.encode("watts?")


def test_chat_jsonl_sends_the_conversation_and_takes_the_answer_as_length(
    backend, tiny_model_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "chat.jsonl"
    conversation = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "energy per token?"},
        {"role": "assistant", "content": "about a joule"},
    ]
    path.write_text(json.dumps({"messages": conversation}) + "\n")
    config = _serving(
        tiny_model_dir,
        {"source": "chat_jsonl", "path": str(path)},
        n_prompts=1,
        serving={"endpoint": "chat"},
    )
    prompts = tokenised_prompts(config, backend, offline=True)
    assert prompts.messages == [conversation[:2]]
    assert prompts.ids[0] == backend.encode_chat(conversation[:2])
    assert prompts.output_tokens == [len(backend.encode("about a joule", add_special_tokens=False))]


def test_shared_prefix_groups_share_exactly_their_prefix(backend, tiny_model_dir: Path) -> None:
    source = {
        "source": "shared_prefix",
        "prefix_tokens": 12,
        "groups": 3,
        "input_length": {"distribution": "uniform", "min": 2, "max": 9},
    }
    config = _config(tiny_model_dir, prompts=source, n_prompts=9)
    ids = tokenised_prompts(config, backend, offline=True).ids
    prefixes = [tuple(p[:12]) for p in ids]
    assert len(set(prefixes)) == 3
    assert all(prefixes[k] == prefixes[k % 3] for k in range(9))
    assert all(2 <= len(p) - 12 <= 9 for p in ids)


def test_a_trace_gives_exact_input_lengths_output_lengths_and_scaled_arrivals(
    backend, tiny_model_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,17,5\n"
        "2023-11-16 18:15:47.1805900,4,9\n"
        "2023-11-16 18:15:48.6805900,30,1\n"
    )
    source = {"source": "trace", "path": str(path), "time_scale": 0.5}
    prompts = tokenised_prompts(
        _serving(tiny_model_dir, source, n_prompts=3), backend, offline=True
    )
    assert [len(p) for p in prompts.ids] == [17, 4, 30]
    assert prompts.output_tokens == [5, 9, 1]
    assert prompts.arrivals_s == pytest.approx([0.0, 0.25, 1.0])


@pytest.mark.parametrize("kind", sorted(PROMPT_SOURCES))
def test_every_source_names_a_builder_here(kind: str) -> None:
    model = PROMPT_SOURCES[kind]
    module, _, name = model.builder.partition(":")
    assert module == "llenergymeasure.experiment.prompts"
    assert callable(getattr(prompts_module, name))


def test_a_prompt_file_above_the_cap_is_a_prompt_error_not_a_memory_error(
    backend, tiny_model_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as handle:  # sparse: no disk, and no GiB read into memory
        handle.truncate(MAX_PROMPT_FILE_BYTES + 1)
    config = _serving(tiny_model_dir, {"source": "sharegpt", "path": str(path)}, n_prompts=1)
    with pytest.raises(PromptError, match=r"big.json: is 1,073,741,825 bytes, above the"):
        tokenised_prompts(config, backend, offline=True)


def test_the_container_reports_a_prompt_file_above_the_cap_in_error_json(
    make_workdir, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        handle.truncate(MAX_PROMPT_FILE_BYTES + 1)
    work = make_workdir(prompts={"source": "jsonl", "path": str(path)}, n_prompts=2)
    done = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.experiment", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    report = ErrorReport.model_validate_json((work / "error.json").read_text())
    assert report.type == "PromptError"
    assert report.message.startswith(f"{path}: is 1,073,741,825 bytes, above the 1,073,741,824")
