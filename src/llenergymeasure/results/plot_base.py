"""What every plot builder returns: a drawn figure, or the reason there is none."""

from __future__ import annotations

import re
from dataclasses import dataclass

from matplotlib.figure import Figure


@dataclass(frozen=True)
class Plot:
    """A drawn figure, or the reason there is none."""

    name: str
    title: str
    figure: Figure | None
    reason: str | None = None


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
