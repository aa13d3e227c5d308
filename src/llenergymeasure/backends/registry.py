"""Backend name -> adapter, as the backend table names it (`module:Class`); the adapter's
module is imported only when chosen, since each pulls its engine."""

from __future__ import annotations

import importlib

from llenergymeasure.backends.base import BackendAdapter, BackendUnavailable
from llenergymeasure.contract.backends import BACKEND_TABLE


def get_backend(name: str) -> BackendAdapter:
    spec = BACKEND_TABLE.get(name)
    if spec is None:
        raise BackendUnavailable(f"unknown backend '{name}'; known: {', '.join(BACKEND_TABLE)}")
    module, _, cls = spec.adapter.partition(":")
    adapter = getattr(importlib.import_module(module), cls)()
    assert isinstance(adapter, BackendAdapter)
    return adapter
