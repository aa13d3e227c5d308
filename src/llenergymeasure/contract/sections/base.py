"""What every backend section is: a strict model that checks itself against the experiment."""

from __future__ import annotations

from llenergymeasure.contract.fields import Strict


class BackendSection(Strict):
    def check(self, gpu_count: int) -> None:
        """Raise CombinationError where this section cannot run on `gpu_count` GPUs (0: CPU)."""
