"""expand(): the grid, backend-scoped dimensions, experiments x sweep, skips, cycles, hashes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import plan_quickly
from llenergymeasure.config.study import ExecutionConfig, StudyConfig
from llenergymeasure.contract.config import ExperimentConfig
from llenergymeasure.errors import UserError
from llenergymeasure.study import Plan, config_hash, cycle_order, design_hash, expand, gap_before
from llenergymeasure.study.expand import serving_problem
from llenergymeasure.study.order import shuffle_seed


def study(**fields: Any) -> StudyConfig:
    fields.setdefault("name", "t")
    fields.setdefault("defaults", {"model": "m"})
    return StudyConfig.model_validate(fields)


def test_cartesian_product_last_dimension_fastest() -> None:
    plan = expand(study(sweep={"max_new_tokens": [8, 16], "n_prompts": [1, 2, 3]}))
    assert plan.n_configs == 6
    pairs = [(c.config.max_new_tokens, c.config.n_prompts) for c in plan.configs]
    assert pairs == [(8, 1), (8, 2), (8, 3), (16, 1), (16, 2), (16, 3)]
    assert plan.configs[0].swept == {"max_new_tokens": 8, "n_prompts": 1}


def test_scalar_in_sweep_is_a_one_item_list() -> None:
    plan = expand(study(sweep={"max_new_tokens": 8}))
    assert plan.n_configs == 1
    assert plan.configs[0].config.max_new_tokens == 8


def test_backend_scoped_dimensions_add_instead_of_multiplying() -> None:
    plan = expand(
        study(
            sweep={
                "backend": ["pytorch", "vllm"],
                "pytorch.batch_size": [1, 8],
                "vllm": {"max_num_seqs": [64, 256]},
            }
        )
    )
    assert plan.n_configs == 4  # 2 + 2, not 2 x 2 x 2
    by_backend = Counter(c.config.backend for c in plan.configs)
    assert by_backend == {"pytorch": 2, "vllm": 2}
    assert [c.config.pytorch.batch_size for c in plan.configs[:2]] == [1, 8]
    assert [c.config.vllm.max_num_seqs for c in plan.configs[2:]] == [64, 256]
    assert all(c.config.vllm is None for c in plan.configs[:2])
    assert "vllm.max_num_seqs" not in plan.configs[0].swept


def test_scoped_dimensions_multiply_with_common_ones() -> None:
    plan = expand(
        study(
            sweep={
                "backend": ["pytorch", "vllm", "tensorrt"],
                "max_new_tokens": [64, 128],
                "pytorch.batch_size": [1, 16, 64],
                "vllm.max_num_seqs": [64, 256],
                "tensorrt.max_batch_size": [8, 32],
            }
        )
    )
    assert plan.n_configs == 2 * (3 + 2 + 2)


def test_defaults_hold_one_section_per_backend_of_a_mixed_study() -> None:
    plan = expand(
        study(
            defaults={"model": "m", "vllm": {"enforce_eager": True}, "pytorch": {"batch_size": 4}},
            sweep={"backend": ["pytorch", "vllm"]},
        )
    )
    pytorch, vllm = (c.config for c in plan.configs)
    assert pytorch.pytorch.batch_size == 4 and pytorch.vllm is None
    assert vllm.vllm.enforce_eager is True and vllm.pytorch is None


def test_sweep_and_experiments_mean_the_grid_then_each_entry_once() -> None:
    # LLenergyMeasure's test_sweep_plus_explicit: 2 sweep configs + 1 explicit = 3, grid first
    plan = expand(
        study(
            defaults={"model": "gpt2", "backend": "pytorch"},
            sweep={"precision": ["fp16", "bf16"]},
            experiments=[{"model": "gpt2-xl", "backend": "pytorch"}],
        )
    )
    got = [(c.config.model, c.config.precision.value, c.origin) for c in plan.configs]
    assert got == [
        ("gpt2", "fp16", "grid"),
        ("gpt2", "bf16", "grid"),
        ("gpt2-xl", "bf16", "experiments[0]"),
    ]
    assert plan.configs[2].swept == {"model": "gpt2-xl", "backend": "pytorch"}


def test_an_entry_sweeps_only_when_it_says_so() -> None:
    plan = expand(
        study(
            experiments=[
                {"model": "a", "sweep": {"max_new_tokens": [8, 16], "pytorch.batch_size": [1, 2]}},
                {"model": "b", "backend": "vllm"},
            ],
        )
    )
    # no top-level sweep: no grid; entry a: 2 x 2; entry b: once
    assert [(c.config.model, c.origin) for c in plan.configs] == [
        ("a", "experiments[0]"),
        ("a", "experiments[0]"),
        ("a", "experiments[0]"),
        ("a", "experiments[0]"),
        ("b", "experiments[1]"),
    ]
    assert plan.configs[0].swept == {"model": "a", "max_new_tokens": 8, "pytorch.batch_size": 1}
    with pytest.raises(UserError, match=r"experiments\[1\]\.sweep\.pytorch\.batch_size: scoped to"):
        expand(
            study(
                experiments=[
                    {"model": "a"},
                    {"model": "b", "backend": "vllm", "sweep": {"pytorch.batch_size": [1, 2]}},
                ]
            )
        )


def test_multi_backend_scoped_sweep_gives_independent_grids() -> None:
    # LLenergyMeasure's test_multi_backend_scoped_sweep: pytorch 2 x 2 + vllm 2 x 2 = 8
    plan = expand(
        study(
            defaults={"model": "gpt2"},
            sweep={
                "backend": ["pytorch", "vllm"],
                "precision": ["fp16", "bf16"],
                "pytorch.batch_size": [1, 8],
                "vllm.max_num_seqs": [64, 256],
            },
        )
    )
    assert Counter(c.config.backend for c in plan.configs) == {"pytorch": 4, "vllm": 4}
    assert all(c.config.vllm is None for c in plan.configs if c.config.backend == "pytorch")
    assert {c.config.vllm.max_num_seqs for c in plan.configs if c.config.vllm} == {64, 256}


def test_nested_block_in_entry_overrides_only_its_keys() -> None:
    plan = expand(
        study(
            defaults={"model": "m", "warmup": {"min_batches": 2, "max_batches": 9}},
            experiments=[{"warmup": {"max_batches": 4}}],
        )
    )
    warmup = plan.configs[0].config.warmup
    assert (warmup.min_batches, warmup.max_batches) == (2, 4)


def test_same_config_twice_gives_distinct_runs() -> None:
    plan = expand(study(experiments=[{"model": "m"}, {"model": "m"}]))
    first, second = plan.runs
    assert first.config_hash == second.config_hash
    assert (first.config_index, second.config_index) == (0, 1)
    assert first.run_id != second.run_id
    assert len({run.run_id for run in plan.runs}) == len(plan.runs)


def test_invalid_combination_is_skipped_with_its_reason() -> None:
    plan = expand(
        study(
            defaults={"model": "m", "backend": "vllm"},
            sweep={"gpu_count": [1, 2], "vllm.tensor_parallel_size": [1, 2]},
        )
    )
    assert plan.n_configs == 2
    assert len(plan.skipped) == 2
    assert {tuple(s.swept.values()) for s in plan.skipped} == {(1, 2), (2, 1)}
    assert all("must equal gpu_count" in s.reason for s in plan.skipped)


def test_every_combination_invalid_is_an_error() -> None:
    with pytest.raises(UserError, match="every combination of the study is invalid"):
        expand(study(defaults={"model": "m", "backend": "vllm"}, sweep={"gpu_count": [2, 3]}))
    # the same rule broken by the defaults alone is a mistake in the file, named at its key
    with pytest.raises(UserError, match=r"gpu_count: vllm.tensor_parallel_size .* must equal"):
        expand(study(defaults={"model": "m", "backend": "vllm", "gpu_count": 2}))


def test_entry_and_its_own_sweep_setting_the_same_key_is_an_error() -> None:
    with pytest.raises(
        UserError, match=r"also swept by experiments\[0\]\.sweep\.decoding\.temperature"
    ):
        expand(
            study(
                experiments=[
                    {
                        "decoding": {"temperature": 0.5},
                        "sweep": {"decoding.temperature": [0.1, 0.2]},
                    }
                ],
            )
        )


def test_a_rule_broken_by_swept_values_is_skipped_but_by_written_ones_is_an_error() -> None:
    swept = expand(study(sweep={"warmup.min_batches": [1, 50]}))
    assert plan_counts(swept) == (1, 1)
    assert "must not exceed max_batches" in swept.skipped[0].reason
    with pytest.raises(UserError, match=r"warmup\.min_batches: min_batches \(50\) must not exceed"):
        expand(study(defaults={"model": "m", "warmup": {"min_batches": 50}}))


def plan_counts(plan: Plan) -> tuple[int, int]:
    return plan.n_configs, len(plan.skipped)


def test_section_for_unused_backend_is_an_error() -> None:
    with pytest.raises(UserError, match="no configuration uses backend 'tensorrt'"):
        expand(study(defaults={"model": "m", "tensorrt": {"tp_size": 1}}))


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("sequential", [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]),
        ("interleaved", [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]),
    ],
)
def test_cycle_orders(order: str, expected: list[tuple[int, int]]) -> None:
    execution = ExecutionConfig(n_cycles=2, cycle_order=order)  # type: ignore[arg-type]
    assert cycle_order(3, execution) == expected
    plan = expand(study(sweep={"n_prompts": [1, 2, 3]}, execution=execution))
    assert [(r.config_index, r.cycle) for r in plan.runs] == expected
    assert [r.run_index for r in plan.runs] == list(range(6))
    assert plan.runs[1].run_id == f"0001_{plan.runs[1].config_hash[:8]}_c{expected[1][1]}"


def test_shuffled_order_is_reproducible_and_complete() -> None:
    def pairs(seed: int) -> list[tuple[int, int]]:
        execution = ExecutionConfig(n_cycles=3, cycle_order="shuffled")
        return cycle_order(20, execution, seed)

    assert pairs(1) == pairs(1)
    assert pairs(1) != pairs(2)
    order = pairs(1)
    for cycle in range(3):
        chunk = order[cycle * 20 : (cycle + 1) * 20]
        assert {c for c, k in chunk} == set(range(20)) and {k for _, k in chunk} == {cycle}
    assert [c for c, _ in order[:20]] != [c for c, _ in order[20:40]]


def test_without_a_seed_each_study_shuffles_its_own_way_and_reruns_alike() -> None:
    execution = ExecutionConfig(n_cycles=2, cycle_order="shuffled")

    def order(values: list[int]) -> list[int]:
        plan = expand(study(sweep={"n_prompts": values}, execution=execution))
        return [values.index(r.config.n_prompts) for r in plan.runs]

    a, b = list(range(1, 13)), list(range(101, 113))  # as many configurations, other designs
    assert order(a) == order(a)
    assert order(a) != order(b)
    seeded = execution.model_copy(update={"shuffle_seed": 5})
    same = [expand(study(sweep={"n_prompts": v}, execution=seeded)) for v in (a, b)]
    assert [r.config_index for r in same[0].runs] == [r.config_index for r in same[1].runs]
    assert shuffle_seed(execution, "0000002a" + "0" * 56) == 42


def test_gap_before_uses_cycle_gap_when_cycle_changes() -> None:
    execution = ExecutionConfig(n_cycles=2, gap_between_experiments_s=5, gap_between_cycles_s=50)
    runs = expand(study(sweep={"n_prompts": [1, 2]}, execution=execution)).runs
    gaps = [
        gap_before(prev, run, execution) for prev, run in zip([None, *runs[:-1]], runs, strict=True)
    ]
    assert gaps == [0.0, 5.0, 50.0, 5.0]


def test_config_hash_ignores_spelling() -> None:
    implicit = ExperimentConfig(model="m")
    explicit = ExperimentConfig.model_validate(
        {"model": "m", "backend": "pytorch", "pytorch": {"batch_size": 1}, "n_prompts": 100}
    )
    other = ExperimentConfig(model="m", n_prompts=99)
    assert config_hash(implicit) == config_hash(explicit)
    assert config_hash(implicit) != config_hash(other)
    assert len(config_hash(implicit)) == 64


def test_design_hash_ignores_execution_but_not_the_grid() -> None:
    a = study(sweep={"n_prompts": [1, 2]})
    b = study(sweep={"n_prompts": [1, 2]}, execution={"n_cycles": 5}, name="other")
    c = study(sweep={"n_prompts": [1, 3]})
    assert design_hash(a) == design_hash(b)
    assert design_hash(a) != design_hash(c)


def test_design_hash_leaves_out_a_search_budget_but_not_its_space() -> None:
    search = {
        "objective": {"minimize": "energy.j_per_output_token"},
        "space": {"n_prompts": [1, 2]},
    }
    a = study(search=search)
    b = study(
        search={
            **search,
            "trials": 50,
            "patience": 4,
            "max_hours": 2.0,
            "confirm": {"max_runs": 30},
        }
    )
    c = study(search={**search, "space": {"n_prompts": [1, 3]}})
    d = study(search={**search, "confirm": {"top": 2}})
    assert design_hash(a) == design_hash(b)
    assert len({design_hash(a), design_hash(c), design_hash(d)}) == 3


def test_expand_does_not_mutate_the_study() -> None:
    s = study(
        defaults={"model": "m", "decoding": {"temperature": 0.3}},
        sweep={"decoding.temperature": [0.5], "pytorch.batch_size": [2]},
    )
    before = s.model_dump()
    expand(s)
    assert s.model_dump() == before


def test_a_backend_without_a_server_is_refused_with_its_reason():
    pytorch = ExperimentConfig(model="m", mode="serving", serving={"n_requests": 2})
    assert "fastapi and uvicorn" in serving_problem(pytorch)
    vllm = pytorch.model_copy(update={"backend": "vllm"})
    assert serving_problem(vllm) is None
    assert serving_problem(ExperimentConfig(model="m")) is None


def test_cycles_and_runs_have_upper_bounds(tmp_path: Path) -> None:
    code, err = plan_quickly(tmp_path, "model: m\nexecution: {n_cycles: 1000000000}\n")
    assert code == 2 and "n_cycles" in err and "10000" in err
    # 1.6 million configurations: refused before one is built, naming the sweep's line
    sweep = (
        "model: m\nsweep:\n"
        "  n_prompts: [" + ", ".join(str(n) for n in range(1, 41)) + "]\n"
        "  max_new_tokens: [" + ", ".join(str(n) for n in range(1, 201)) + "]\n"
        "  precision: [fp16, bf16, fp32]\n"
        "  pytorch.batch_size: [" + ", ".join(str(n) for n in range(1, 68)) + "]\n"
    )
    code, err = plan_quickly(tmp_path, sweep)
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
