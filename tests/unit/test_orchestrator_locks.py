from __future__ import annotations

import pytest

from llenergymeasure.errors import UserError
from llenergymeasure.orchestrator.locks import GpuLocks


def test_lock_is_exclusive_names_the_holder_and_frees_on_release(tmp_path):
    first = GpuLocks([0, 1], "study-a", tmp_path).acquire()
    with pytest.raises(UserError, match=r"GPU 1 is in use .*study-a \(pid \d+\)"):
        GpuLocks([1, 2], "study-b", tmp_path).acquire()
    GpuLocks([2], "study-c", tmp_path).acquire().release()  # all-or-none: 2 was freed
    first.release()
    GpuLocks([0, 1], "study-b", tmp_path).acquire().release()


def test_no_gpus_takes_no_lock(tmp_path):
    with GpuLocks([], "cpu-study", tmp_path / "never"):
        pass
    assert not (tmp_path / "never").exists()
