"""The whole report on synthetic runs: files written, flags visible, HTML standalone and valid."""

from __future__ import annotations

import base64
import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest

from servingbench.cli import main
from servingbench.report import Report, ReportSettings, build_report, load_run
from servingbench.report.document import FLAG_MARK, Image
from servingbench.report.html import render_html
from servingbench.runs.layout import RECORDS_FILE, RunLayout
from servingbench.runs.meta import RunMeta
from tests.synthetic_run import REPEATS, Series, make_run

EXPECTED_FILES = {
    "summary.csv",
    "points.csv",
    "req_s_by_level.csv",
    "p99_ms_by_level.csv",
    "capacity_under_p99_bound.csv",
    "ratio_to_baseline.csv",
    "breakdown_1.png",  # the two lowest levels: the servers report their own timing
    "breakdown_4.png",
    "latency_vs_throughput.png",
    "latency_vs_load.png",
    "error_rate.png",
    "latency_cdf_16.png",  # highest level every series measured (2 of mlserver-grpc's 3 ran)
    "report.md",
    "report.html",
    "summary.json",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return build_report(load_run(make_run(tmp_path_factory.mktemp("runs"))))


def _root(report: Report) -> Path:
    return report.files[0].parent


def _small(base: Path, run_id: str = "synthetic") -> RunLayout:
    """Two MLServer series at two levels: enough for the command's options, quick to report."""
    series = (Series("mlserver-rest"), Series("mlserver-grpc"))
    return make_run(base, run_id, series=series, levels=(1, 2), repeats=2)


def test_all_files_written(report: Report) -> None:
    assert {p.name for p in report.files} == EXPECTED_FILES
    for path in report.files:
        assert path.stat().st_size > 0
    assert not list(_root(report).glob(".*.tmp"))  # atomic writes left no temp file


def test_markdown_has_seed_tables_flags_and_metadata(report: Report) -> None:
    text = (_root(report) / "report.md").read_text()
    assert "Results per series (latency in seconds)" in text
    assert "| N | repeats | avg | q50 | q99 | q99.9 | req/s | error % | flags |" in text
    assert f"| 16 {FLAG_MARK} | {REPEATS} |" in text  # client-bound, erroring
    assert f"| 16 {FLAG_MARK} | {REPEATS - 1} |" in text  # one repeat failed
    assert f"| 4 {FLAG_MARK} | {REPEATS} |" in text  # one repeat unstable
    for flag in ("client-bound", "unstable", "failed"):
        assert flag in text
    # the Flags section: how many points, what the flag means, one reason
    assert "errors (3 points): some measured requests failed; e.g. synthetic errors" in text
    assert "CPU: Synthetic CPU, 2 logical cores" in text
    assert "(uncommitted changes)" in text
    assert "## Pinning\n\n- server: 0\n- generator: 1\n- harness: 0" in text
    assert "## Notes\n\n- synthetic run written by tests/synthetic_run.py" in text
    for image in ("latency_vs_throughput.png", "latency_cdf_16.png"):
        assert f"({image})" in text


def test_capacity_row_from_a_flagged_level_is_marked(report: Report) -> None:
    """fastapi-rest's best level is client-bound: it counts, but never as a clean figure."""
    text = (_root(report) / "report.md").read_text()
    capacity = text.split("## Capacity")[1].split("\n## ")[0]
    rows = {line.split(" | ")[0]: line for line in capacity.splitlines() if line.startswith("| ")}
    assert rows[f"| fastapi-rest {FLAG_MARK}"].endswith("at 16 users |")
    assert "| fastapi-rest@batching" in rows  # a clean best level: unmarked


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.charts: list[str] = []
        self.script_sources: list[str] = []
        self.flagged = 0
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
            return
        if values.get("class") == "plotly-graph-div":
            self.charts.append(values.get("id") or "")
        if tag == "script" and values.get("src"):
            self.script_sources.append(values.get("src") or "")
        if values.get("class") == "flagged":
            self.flagged += 1
        if tag not in ("meta",):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> without an open tag"
        assert self.open[-1] == tag, f"</{tag}> closes <{self.open[-1]}>"
        self.open.pop()


def test_html_is_standalone_and_marks_flags(report: Report) -> None:
    """Each PNG of report.md is an interactive chart in report.html, and plotly.js is in the
    page once (nothing fetched: it opens offline)."""
    text = (_root(report) / "report.html").read_text()
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert parser.open == []
    pngs = [p.stem for p in report.files if p.suffix == ".png"]
    assert parser.charts == [f"figure-{stem}" for stem in pngs]
    assert parser.images == []
    assert parser.script_sources == []
    assert text.count("* plotly.js v") == 1
    assert parser.flagged >= 4


def test_html_without_descriptions_embeds_pngs(report: Report) -> None:
    """An image the document does not describe is embedded as PNG, and then no plotly.js."""
    root = _root(report)
    png = next(p for p in report.files if p.suffix == ".png")
    parser = _Collector()
    parser.feed(render_html([Image(png.name, "a plot")], root, "t"))
    parser.close()
    prefix = "data:image/png;base64,"
    assert len(parser.images) == 1
    assert parser.images[0].startswith(prefix)
    assert base64.b64decode(parser.images[0][len(prefix) :]).startswith(b"\x89PNG")
    assert parser.charts == []


def test_run_without_records_still_reports(tmp_path: Path) -> None:
    """Every point failed: the report says n/a rather than failing or inventing numbers."""
    layout = _small(tmp_path)
    for npz in layout.points_dir.glob(f"*/{RECORDS_FILE}"):
        npz.unlink()
    result = build_report(load_run(layout))
    names = {p.name for p in result.files}
    assert "report.html" in names
    assert not any(n.startswith("latency_cdf") for n in names)
    assert result.tables.baseline is None
    assert set(result.tables.capacity["result"]) == {"no measured point"}
    assert "n/a" in (layout.root / "report.md").read_text()


def test_bad_cdf_level_writes_nothing(tmp_path: Path) -> None:
    layout = _small(tmp_path)
    with pytest.raises(ValueError, match="choose one of: 1, 2"):
        build_report(load_run(layout), ReportSettings(cdf_level=3))
    assert not (layout.root / "summary.csv").exists()


def test_command_writes_and_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Options reach the report; --baseline adds the comparison; bad input exits 2, saying why."""
    layout, other = _small(tmp_path), _small(tmp_path, "other")
    code = main(
        [
            "report",
            "--run",
            str(layout.root),
            "--p99-bound-ms",
            "10",
            "--cdf-level",
            "1",
            "--baseline-series",
            "mlserver-grpc",
            "--baseline",
            str(other.root),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "mlserver-rest" in out
    assert f"wrote {layout.root / 'latency_cdf_1.png'}" in out
    assert f"wrote {layout.root / 'comparison.md'}" in out
    assert "### Against mlserver-grpc" in (layout.root / "report.md").read_text()
    assert "synthetic compared with baseline other" in (layout.root / "comparison.md").read_text()
    with caplog.at_level(logging.ERROR):
        assert main(["report", "--run", str(layout.root), "--baseline-series", "nope"]) == 2
        assert main(["report", "--run", str(tmp_path / "missing")]) == 2
        # another schema (the refusal itself: tests/unit/test_schema.py): the message, no report
        meta = RunMeta.read(other.meta)
        meta.schema_version = 2
        meta.write(other.meta)
        assert main(["report", "--run", str(other.root)]) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("unknown baseline series 'nope'" in m for m in messages)
    assert any("uses run schema 2" in m and "make bench" in m for m in messages)
    assert not (other.root / "report.md").exists()
