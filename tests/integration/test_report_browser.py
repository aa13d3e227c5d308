"""The HTML report in real headless Chromium, driven over the DevTools protocol on a pipe.

Chromium's `--remote-debugging-pipe` reads commands on fd 3 and writes replies and events on
fd 4, each a JSON message ended by NUL: no port, no websocket library, nothing to leak.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from helpers.results import OOM, standard_study
from llenergymeasure.results.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "chromium is not installed (apt-get install chromium)"
# scripts/test installs chromium where it can and then requires it: a skip would hide the test.
if CHROMIUM is None and os.environ.get("LLEM_REQUIRE_CHROMIUM") == "1":
    pytest.fail(NO_CHROMIUM, pytrace=False)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
    "--window-size=1280,900",
)
TIMEOUT_S = 60.0


class Browser:
    """A headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # bash places the pipe ends on fds 3 and 4 and then becomes chromium.
        script = f'exec "$@" 3<&{to_child_r} 4>&{from_child_w}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, "bash", str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}"],
            pass_fds=(to_child_r, from_child_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.page(f"{domain}.enable")

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("chromium did not answer over the DevTools pipe")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        request: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            request["sessionId"] = session
        os.write(self._to_child, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, self.session, **params)

    def wait_event(self, method: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(event.get("method") == method for event in self.events):
            self.events.append(self._read_message(deadline))

    def load(self, url: str) -> None:
        self.events.clear()
        self.page("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen since the last load."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return found

    def evaluate(self, expression: str) -> Any:
        reply = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(
            self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        )
        path.write_bytes(data)
        return data

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_child)
        os.close(self._from_child)


@pytest.fixture
def browser(tmp_path: Path):
    chromium = Browser(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


PAGE_FACTS = """JSON.stringify({
  title: document.title,
  sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
  images: [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0,
                                           width: i.naturalWidth})),
  text: document.body.innerText,
})"""


def test_report_loads_cleanly_with_its_sections_and_figures(
    browser: Browser, tmp_path: Path
) -> None:
    study_dir = standard_study(tmp_path)
    first_run = sorted((study_dir / "experiments").iterdir())[0]
    t = np.arange(0.0, 12.0, 0.1)
    pd.DataFrame(  # the experiment's columns (contract.workdir TIMESERIES_*)
        {
            "t_s": t,
            "phase": "window",
            "gpu": 0,
            "power_w": 250 + 30 * np.sin(t),
            "temperature_c": 40 + t,
        }
    ).to_parquet(first_run / "timeseries.parquet")
    report = write_report(study_dir)

    browser.load(report.resolve().as_uri())
    assert browser.errors() == []
    facts = json.loads(browser.evaluate(PAGE_FACTS))
    assert facts["title"].startswith("llem report: test-study")
    for section in ("overview", "configurations", "plots", "failures", "warnings", "images"):
        assert section in facts["sections"]
    assert {"environment", "study-file"} <= set(facts["sections"])
    images = facts["images"]
    assert [image["alt"].split(" ")[0] for image in images] == ["Energy", "Energy", "Power"]
    assert all(image["ok"] and image["width"] > 400 for image in images), images
    assert "Results by configuration" in facts["text"]
    assert OOM in facts["text"]

    shot = browser.screenshot(tmp_path / "report.png")
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    height = int.from_bytes(shot[20:24], "big")
    assert height > 900  # the full page, beyond the first screen


def test_the_error_check_catches_a_broken_page(browser: Browser, tmp_path: Path) -> None:
    """The same check on a page with a script error and a missing image must fail."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        '<img src="missing.png"><script>console.error("boom"); undefinedCall();</script>'
        "</body></html>",
        encoding="utf-8",
    )
    browser.load(page.as_uri())
    errors = browser.errors()
    assert any("console.error" in e and "boom" in e for e in errors), errors
    assert any(e.startswith("exception:") for e in errors), errors
    assert any("missing.png" in e for e in errors), errors
