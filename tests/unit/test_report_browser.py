"""report.html in a real browser: headless Chromium (Debian's `chromium`) loads it offline, no
script fails, and every chart is drawn. Skipped when no Chromium is on the PATH.

The test puts a small script at the top of a copy of the page that writes every error (an
uncaught exception, a rejected promise, `console.error`) into an attribute of `<html>`;
Chromium's `--dump-dom` prints the page after its scripts ran, so the attribute and Plotly's
drawn charts can be read from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from servingbench.report import Report, build_report, load_run
from tests.synthetic_run import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium on the PATH (apt-get install chromium)"
    ),
]

TIMEOUT_S = 120
CAPTURE = """<script>(function () {
  var errors = [];
  function note(text) {
    errors.push(String(text));
    document.documentElement.setAttribute("data-script-errors", JSON.stringify(errors));
  }
  document.documentElement.setAttribute("data-script-errors", "[]");
  window.addEventListener("error", function (e) { note(e.message || "error"); });
  window.addEventListener("unhandledrejection", function (e) {
    note("unhandled rejection: " + (e.reason && e.reason.message || e.reason));
  });
  var original = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();</script>"""


@dataclass
class Page:
    errors: list[str] | None
    """What the page's scripts reported; None when the capture never ran."""
    charts: dict[str, bool]
    """Chart div id -> whether Plotly drew it."""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] | None = None
        self.charts: dict[str, bool] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html" and values.get("data-script-errors") is not None:
            self.errors = json.loads(values["data-script-errors"] or "[]")
        classes = (values.get("class") or "").split()
        if tag == "div" and "plotly-graph-div" in classes:
            self.charts[values.get("id") or ""] = "js-plotly-plot" in classes


def _render(html: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran; Chromium and every child it started are killed."""
    assert CHROMIUM is not None
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
        html.as_uri(),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0 or out, f"chromium exited with {proc.returncode}"
    return out.decode("utf-8", "replace")


def _open(page: Path, tmp_path: Path, change: tuple[str, str] | None = None) -> Page:
    """Load a copy of `page` with the error capture first in its head (and `change`, a
    (pattern, replacement) pair, made once)."""
    text = page.read_text()
    head = '<meta charset="utf-8">'
    assert head in text
    text = text.replace(head, head + CAPTURE, 1)
    if change is not None:
        text, count = re.subn(change[0], change[1], text, count=1)
        assert count == 1, f"{change[0]!r} is not in the page"
    copy = tmp_path / "page.html"
    copy.write_text(text)
    reader = _Reader()
    reader.feed(_render(copy, tmp_path / "profile"))
    return Page(reader.errors, reader.charts)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return build_report(load_run(make_run(tmp_path_factory.mktemp("runs"))))


def _charts(report: Report) -> list[str]:
    return [f"figure-{p.stem}" for p in report.files if p.suffix == ".png"]


def test_report_renders_without_script_errors(report: Report, tmp_path: Path) -> None:
    page = _open(report.files[-1].parent / "report.html", tmp_path)
    assert page.errors == []
    assert page.charts == dict.fromkeys(_charts(report), True)


def test_a_script_error_is_caught(report: Report, tmp_path: Path) -> None:
    """The check can fail: a chart whose call is broken raises, and is not drawn."""
    first = _charts(report)[0]
    broken = _open(
        report.files[-1].parent / "report.html",
        tmp_path,
        (rf'Plotly\.newPlot\(\s*"{first}"', f'Plotly.newPlott("{first}"'),
    )
    assert broken.errors
    assert any("newPlott" in e for e in broken.errors)
    assert broken.charts[first] is False
    assert all(broken.charts[c] for c in _charts(report)[1:])
