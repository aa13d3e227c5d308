"""The study's execution settings: limits validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llenergymeasure.config.study import DEFAULT_CONTAINER_USER, ExecutionConfig


def test_execution_limits_are_validated() -> None:
    default = ExecutionConfig()
    assert default.container_user == DEFAULT_CONTAINER_USER
    assert default.pids_limit == 8192 and default.ulimits == {}
    with pytest.raises(ValidationError, match="must not be uid 0"):
        ExecutionConfig(container_user="0:1000")
    with pytest.raises(ValidationError, match="container_user"):
        ExecutionConfig(container_user="llem")
    with pytest.raises(ValidationError, match="unknown ulimit 'nproc'"):
        ExecutionConfig(ulimits={"nproc": 10})
    with pytest.raises(ValidationError, match=r"-1 \(unlimited\)"):
        ExecutionConfig(ulimits={"nofile": -5})
    with pytest.raises(ValidationError, match="greater than or equal to 64"):
        ExecutionConfig(pids_limit=10)
    assert ExecutionConfig(pids_limit=None).pids_limit is None
