"""The backend table: one row per backend, read by host and container alike."""

from __future__ import annotations

import importlib

from llenergymeasure.backends.base import BackendAdapter
from llenergymeasure.config.study import default_images
from llenergymeasure.contract.backends import BACKEND_TABLE, spec_of
from llenergymeasure.contract.config import BACKENDS, ExperimentConfig
from llenergymeasure.orchestrator.machine.run_spec import shm_size_for
from llenergymeasure.study.estimate import estimate_run


def test_every_backend_has_a_row_whose_facts_hold() -> None:
    assert tuple(BACKEND_TABLE) == BACKENDS
    for name, spec in BACKEND_TABLE.items():
        assert spec.name == name
        section = ExperimentConfig.model_fields[name].annotation
        model = next(m for m in section.__args__ if m is not type(None))  # type: ignore[union-attr]
        assert spec.concurrency_key in model.model_fields, name
        module, _, cls = spec.adapter.partition(":")
        # the name the table gives finds the adapter class that says it is that backend
        adapter = getattr(importlib.import_module(module), cls)
        assert issubclass(adapter, BackendAdapter) and adapter.name == name
        assert default_images()[name].startswith(spec.image + ":")


def test_the_table_drives_containers_and_estimates() -> None:
    vllm = ExperimentConfig(model="m", backend="vllm", gpu_count=1)
    assert shm_size_for(vllm) == spec_of("vllm").shm_one_gpu == "1g"
    assert shm_size_for(ExperimentConfig(model="m", gpu_count=0)) is None
    assert estimate_run(vllm).startup_s == spec_of("vllm").startup_guess_s
