"""The compose file writes llem's version once (compose/.env), and it is the package's."""

from __future__ import annotations

from pathlib import Path

from llenergymeasure.version import __version__

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


def test_the_compose_version_is_written_once_and_is_the_packages():
    env = dict(
        line.split("=", 1)
        for line in (COMPOSE / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["LLEM_VERSION"] == __version__
    assert __version__ not in (COMPOSE / "images.yaml").read_text()
