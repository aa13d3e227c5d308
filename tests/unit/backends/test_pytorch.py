"""Counting generated tokens: stop at the first EOS, never count padding."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from llenergymeasure.backends.pytorch import count_generated

EOS, PAD = 2, 3


def test_fixed_length_rows_count_in_full() -> None:
    assert count_generated([[5, 6, 7], [8, 9, 10]], {EOS}) == [3, 3]


def test_eos_is_counted_and_padding_after_it_is_not() -> None:
    rows = [[5, EOS, PAD, PAD], [5, 6, 7, EOS], [5, 6, 7, 8]]
    assert count_generated(rows, {EOS}) == [2, 4, 4]


def test_pad_equal_to_eos() -> None:
    assert count_generated([[5, EOS, EOS, EOS]], {EOS}) == [2]


def test_several_eos_ids() -> None:
    assert count_generated([[5, 9, 1], [4, 4, 4]], {9, 1}) == [2, 3]
