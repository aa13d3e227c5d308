"""Mode name -> its session (`mode:` of the experiment); a mode's module is imported only when
chosen (serving pulls the load generator and the server's client)."""

from __future__ import annotations

import importlib

from llenergymeasure.experiment.session import Session

MODES = {
    "offline": "llenergymeasure.experiment.offline:OfflineSession",
    "serving": "llenergymeasure.experiment.serving.session:ServingSession",
}


def session_class(mode: str) -> type[Session]:
    module, _, name = MODES[mode].partition(":")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, type) and issubclass(found, Session)
    return found
