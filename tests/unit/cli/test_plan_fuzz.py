"""Malformed study documents through the real CLI entry: exit 2, one message, no traceback."""

from __future__ import annotations

import io
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from helpers.cli import run_llem
from llenergymeasure.config.loader import EXPERIMENT_KEYS, STUDY_KEYS

VALID: dict[str, Any] = {
    "name": "fuzz",
    "model": "some/model",
    "n_prompts": 4,
    "max_new_tokens": 8,
    "decoding": {"temperature": 0.0},
    "sweep": {"pytorch.batch_size": [1, 2]},
    "execution": {"n_cycles": 2},
}
NESTED_KEYS = {
    "decoding": ["temperature", "top_p", "top_k", "repetition_penalty", "seed"],
    "warmup": ["enabled", "min_batches", "max_batches", "cv_window", "cv_bound"],
    "pytorch": ["batch_size", "attn_implementation", "torch_compile", "load_in_8bit"],
    "execution": ["n_cycles", "cycle_order", "shuffle_seed", "gpu_ids", "stall_timeout_s"],
}
POSITIVE_INT_FIELDS = ["n_prompts", "max_new_tokens", "max_input_tokens"]
names = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=20)


# Strings pydantic's lax mode reads as booleans: valid for `offline`, so not malformed.
BOOLEAN_WORDS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}


def _not_a_number(text: str) -> bool:
    if text.strip().lower() in BOOLEAN_WORDS:
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def with_key(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in VALID.items()}
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return doc


unknown_top = names.filter(lambda k: k not in STUDY_KEYS + EXPERIMENT_KEYS).map(
    lambda k: with_key((k,), 1)
)
unknown_nested = st.sampled_from(sorted(NESTED_KEYS)).flatmap(
    lambda block: names.filter(lambda k: k not in NESTED_KEYS[block] and k != "source").map(
        lambda k: with_key((block, k), 1)
    )
)
wrong_type = (
    st.tuples(
        st.sampled_from([*POSITIVE_INT_FIELDS, "model", "offline"]),
        st.one_of(
            st.text(min_size=1, max_size=10).filter(_not_a_number),
            st.lists(st.integers(), min_size=1, max_size=3),
            st.dictionaries(names, st.integers(), min_size=1, max_size=2),
        ),
    )
    .filter(lambda kv: not (kv[0] == "model" and isinstance(kv[1], str)))
    .map(lambda kv: with_key((kv[0],), kv[1]))
)
bad_value = st.one_of(
    st.tuples(st.sampled_from(POSITIVE_INT_FIELDS), st.integers(max_value=0)).map(
        lambda kv: with_key((kv[0],), kv[1])
    ),
    names.filter(lambda p: p not in ("fp32", "fp16", "bf16")).map(
        lambda p: with_key(("precision",), p)
    ),
    st.integers(max_value=0).map(lambda n: with_key(("execution", "n_cycles"), n)),
    st.floats(max_value=-0.001, allow_nan=False).map(
        lambda t: with_key(("decoding", "temperature"), t)
    ),
    names.filter(lambda b: b not in ("pytorch", "vllm", "tensorrt")).map(
        lambda b: with_key(("sweep",), {"backend": ["pytorch", b]})
    ),
)
empty_sweep = st.sampled_from(POSITIVE_INT_FIELDS).map(lambda k: with_key(("sweep",), {k: []}))
missing_base = names.map(lambda n: with_key(("base",), f"no-such-{n}.yaml"))
foreign_section = st.sampled_from(["vllm", "tensorrt"]).map(
    lambda b: with_key((b,), {"max_num_seqs" if b == "vllm" else "tp_size": 1})
)
BROKEN = ["key: [unclosed", "a: b: c", "\t- tab", "- item", '"open', "{x: 1", "? ! &"]
broken_yaml = st.tuples(st.sampled_from(BROKEN), st.integers(0, 6)).map(
    lambda fi: ("yaml", fi[0], fi[1])
)
not_a_mapping = st.one_of(
    st.lists(st.integers(), min_size=1, max_size=3), st.integers(), names
).map(lambda v: ("value", v))

documents = st.one_of(
    unknown_top.map(lambda d: ("doc", d)),
    unknown_nested.map(lambda d: ("doc", d)),
    wrong_type.map(lambda d: ("doc", d)),
    bad_value.map(lambda d: ("doc", d)),
    empty_sweep.map(lambda d: ("doc", d)),
    missing_base.map(lambda d: ("doc", d)),
    foreign_section.map(lambda d: ("doc", d)),
    broken_yaml,
    not_a_mapping,
)


def render(case: tuple[Any, ...]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    if case[0] == "yaml":
        yaml.dump(VALID, out)
        lines = out.getvalue().splitlines()
        lines.insert(min(case[2], len(lines)), case[1])
        return "\n".join(lines) + "\n"
    yaml.dump(case[1], out)
    return out.getvalue()


WORKDIR = Path(tempfile.mkdtemp(prefix="llem-fuzz-"))


def run_cli(text: str) -> tuple[int, str]:
    path = WORKDIR / "study.yaml"
    path.write_text(text)
    code, _, err = run_llem("plan", str(path))
    return code, err


def test_valid_document_plans() -> None:
    code, err = run_cli(render(("doc", VALID)))
    assert code == 0, err


# 100 examples by default; the `ci` profile (tests/conftest.py) runs 1,000.
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
@given(documents)
def test_malformed_document_gives_exit_2_and_one_message(case: tuple[Any, ...]) -> None:
    code, err = run_cli(render(case))
    assert code == 2, (case, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines and lines[0].startswith("error: "), err
    assert all(line.startswith("  fix: ") for line in lines[1:]) and len(lines) <= 2, err
    assert "study.yaml" in err, err
