"""A second `llem run` on GPUs another llem holds is refused, naming the holder.

No NVIDIA runtime exists on the CI machines, so a GPU study cannot start here; the lock is taken
before the engine and runtime checks, so the refusal is observable anyway. The holder is this
test process, holding the lock through the same HostLocks a running study uses.
"""

from __future__ import annotations

import os

import pytest

from helpers.integration import llem, study_dirs, write_study
from llenergymeasure.orchestrator.machine.locks import HostLocks

pytestmark = pytest.mark.docker


def test_second_llem_on_the_same_gpu_is_refused(tmp_path, client, fault_image):
    locks = tmp_path / "locks"
    study = write_study(tmp_path, ["fault:ok-1"], gpu_count=1, execution={"gpu_ids": [0]})
    env = {**os.environ, "LLEM_LOCK_DIR": str(locks)}
    with HostLocks([0], "other-study_20260101T000000_abcdef01", locks):
        proc = llem("run", str(study), cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert "GPU 0 is in use" in proc.stderr
    assert f"other-study_20260101T000000_abcdef01 (pid {os.getpid()})" in proc.stderr
    assert study_dirs(tmp_path) == []
    # once released, the same study gets past the lock (and stops at the NVIDIA runtime check)
    proc = llem("run", str(study), cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "GPU 0 is in use" not in proc.stderr
