"""How long ids are shown: short enough for a line or a column, long enough to tell apart."""

from __future__ import annotations

SHORT_ID_CHARS = 19  # "sha256:" and 12 hex digits, as `docker images` shows an image ID


def short_id(value: str) -> str:
    """An image ID or digest (`sha256:...`) cut to its first 12 hex digits."""
    return value[:SHORT_ID_CHARS]
