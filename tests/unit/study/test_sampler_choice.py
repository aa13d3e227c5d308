"""`sampler: auto`'s rule on each shape, its fallback where torch cannot be imported, and a
named `gp` without torch refused at planning."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from helpers.simulated import search_study
from llenergymeasure.config.search import SearchConfig
from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.planned import search_of
from llenergymeasure.study.expand import expand
from llenergymeasure.study.sampler_choice import (
    GP_EXTRA,
    GP_MAX_KEYS,
    GP_MAX_TRIALS,
    choose_sampler,
    gp_installed,
    sampler_note,
    sampler_text,
)

J = "energy.j_per_output_token"
TTFT = "latency.ttft_ms.p99"
NUMBERS = [1, 2, 4, 8]


def search(space: dict[str, Any], **more: Any) -> SearchConfig:
    return SearchConfig.model_validate({"objective": {"minimize": J}, "space": space, **more})


def chosen(config: SearchConfig, gp: bool = True) -> tuple[str, int]:
    choice = choose_sampler(config, list(config.space.values()), gp=gp)
    return choice.kind, choice.startup


def test_auto_is_the_default() -> None:
    assert search({"n_prompts": NUMBERS}).sampler == "auto"


def test_auto_takes_gp_for_numbers_ordinals_categoricals_and_constraints() -> None:
    assert chosen(search({"n_prompts": NUMBERS, "max_new_tokens": {"low": 8, "high": 64}})) == (
        "gp",
        5,
    )
    mixed = {
        "n_prompts": NUMBERS,
        "max_new_tokens": [16, 32],
        "precision": ["fp16", "bf16"],
        "pytorch.torch_compile": [False, True],
    }
    assert chosen(search(mixed, constraints=[f"{TTFT} <= 100"])) == ("gp", 5)
    six = {**mixed, "decoding.temperature": {"low": 0.1, "high": 1.0}, "pytorch.batch_size": [1]}
    assert chosen(search(six)) == ("gp", 10)  # more keys: a longer random start


def test_auto_takes_tpe_for_several_objectives() -> None:
    config = SearchConfig.model_validate(
        {"objectives": [{"minimize": J}, {"minimize": TTFT}], "space": {"n_prompts": NUMBERS}}
    )
    assert chosen(config) == ("tpe", 10)


def test_auto_takes_tpe_past_the_keys_or_the_trials_the_figures_cover() -> None:
    many = {f"k{i}": NUMBERS for i in range(GP_MAX_KEYS + 1)}
    assert chosen(search(many)) == ("tpe", 10)
    assert chosen(search({"n_prompts": NUMBERS}, trials=GP_MAX_TRIALS))[0] == "gp"
    assert chosen(search({"n_prompts": NUMBERS}, trials=GP_MAX_TRIALS + 1))[0] == "tpe"


def test_auto_without_gp_takes_tpe_and_says_what_to_install() -> None:
    config = search({"n_prompts": NUMBERS})
    choice = choose_sampler(config, list(config.space.values()), gp=False)
    assert choice.kind == "tpe" and GP_EXTRA in choice.reason


@pytest.mark.parametrize("name", ["tpe", "gp", "nsga2", "random", "grid"])
def test_a_named_sampler_is_that_one(name: str) -> None:
    assert chosen(search({"n_prompts": NUMBERS}, sampler=name), gp=False)[0] == name


def test_gp_is_looked_up_without_importing_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        from llenergymeasure.study.sampler_choice import gp_installed
        print(gp_installed(), "torch" in sys.modules)
        """
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.stdout.split() == [str(gp_installed()), "False"], shown.stderr


def test_without_torch_auto_falls_back_to_tpe_and_a_search_runs() -> None:
    """torch made unimportable in a fresh interpreter (an import hook that finds no torch):
    auto takes TPE, says so, and the cell sampler asks and is told with it."""
    code = textwrap.dedent(
        """
        import sys

        class NoTorch:  # as if torch were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoTorch())
        from helpers.simulated import search_study
        from llenergymeasure.study.sampler_choice import (
            gp_installed, sampler_note, sampler_text)
        from llenergymeasure.orchestrator.schedule.search.sampler import CellSampler
        from llenergymeasure.orchestrator.planned import search_of
        from llenergymeasure.results.search import Judgement
        from llenergymeasure.study.expand import expand
        from llenergymeasure.study.search_space import cells_of

        study = search_study({
            "objective": {"minimize": "energy.j_per_output_token"},
            "space": {"n_prompts": [1, 2, 4, 8], "max_new_tokens": [8, 16, 32]},
        })
        cell = cells_of(search_of(study, expand(study)))[0]
        sampler = CellSampler(study.search, cell)
        for number in range(12):
            params, notes = sampler.ask(number)
            told = Judgement(True, [1.0 / (number + 1)], [], [0.0], None)
            sampler.tell(number, params, notes, told)
        print(gp_installed(), sampler.choice.kind)
        print(sampler_text(study.search))
        print(sampler_note(study.search))
        """
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=_tests_dir()
    )
    assert shown.returncode == 0, shown.stderr
    first, text, note = shown.stdout.splitlines()
    assert first == "False tpe"
    assert text.startswith("auto: tpe") and GP_EXTRA in text
    assert GP_EXTRA in note


def test_with_gp_installed_there_is_no_note() -> None:
    if not gp_installed():
        pytest.skip("the search extra (torch, scipy) is not installed")
    config = search({"n_prompts": NUMBERS})
    assert sampler_note(config) is None
    assert sampler_text(config) == "auto: gp for 1 key"


def test_a_named_gp_without_torch_is_a_user_error_at_planning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # an import of torch fails
    study = search_study(
        {"objective": {"minimize": J}, "space": {"n_prompts": NUMBERS}, "sampler": "gp"}
    )
    with pytest.raises(UserError) as raised:
        search_of(study, expand(study))
    assert "search.sampler: gp needs torch" in raised.value.message
    assert raised.value.hint is not None and GP_EXTRA in raised.value.hint
    auto = search_study({"objective": {"minimize": J}, "space": {"n_prompts": NUMBERS}})
    search_of(auto, expand(auto))  # auto plans anyway (with TPE)


def _tests_dir() -> Path:
    return Path(__file__).resolve().parents[2]
