"""Reading a study file is bounded: its size and what its aliases expand to."""

from __future__ import annotations

from pathlib import Path

from helpers.cli import plan_quickly


def test_yaml_aliases_that_expand_exponentially_are_one_message(tmp_path: Path) -> None:
    # 370 bytes that expand to 2.3 million values when every alias is followed.
    lines = ["a: &a [x, x, x, x, x, x, x, x]"]
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}]")
    lines.append("model: [*g, *g, *g, *g, *g, *g, *g, *g, *g]")
    code, err = plan_quickly(tmp_path, "\n".join(lines) + "\n")
    assert code == 2 and "expands to more than 100,000 values" in err
    assert "Traceback" not in err


def test_a_study_file_above_its_size_cap_is_refused(tmp_path: Path) -> None:
    code, err = plan_quickly(tmp_path, "model: m\n" + "# padding\n" * 500_000)
    assert code == 2 and "at most 4 MiB" in err
