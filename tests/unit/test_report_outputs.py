"""The whole report on synthetic runs: files written, flags visible, HTML standalone and valid."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from servingbench.cli import main
from servingbench.report import Report, ReportSettings, build_report, load_run
from servingbench.report.document import FLAG_MARK
from servingbench.runs.layout import RECORDS_FILE
from tests.synthetic_run import make_run

EXPECTED_FILES = {
    "summary.csv",
    "req_s_by_concurrency.csv",
    "p99_ms_by_concurrency.csv",
    "max_req_s_under_p99_bound.csv",
    "ratio_to_baseline.csv",
    "latency_vs_throughput.png",
    "latency_vs_concurrency.png",
    "error_rate.png",
    "latency_cdf_c4.png",  # highest concurrency every series measured (one N=16 point failed)
    "report.md",
    "report.html",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return build_report(load_run(make_run(tmp_path_factory.mktemp("runs"))))


def _root(report: Report) -> Path:
    return report.files[0].parent


def test_all_files_written(report: Report) -> None:
    assert {p.name for p in report.files} == EXPECTED_FILES
    for path in report.files:
        assert path.stat().st_size > 0
    assert not list(_root(report).glob(".*.tmp"))  # atomic writes left no temp file


def test_markdown_has_seed_tables_flags_and_metadata(report: Report) -> None:
    text = (_root(report) / "report.md").read_text()
    assert "Results per series (latency in seconds)" in text
    assert "| N | avg | q25 | q50 | q90 | q95 | q99 | req/s | error % | flags |" in text
    assert f"| 16 {FLAG_MARK} |" in text  # the client-bound and the failed rows
    assert f"| 4 {FLAG_MARK} |" in text  # the unstable row
    assert "client-bound" in text
    assert "unstable" in text
    assert "failed" in text
    assert "CPU: Synthetic CPU, 2 logical cores" in text
    assert "(uncommitted changes)" in text
    # the sweep raises `errors` for any failed measured request, not past some threshold
    assert "errors: at least one measured request failed" in text
    assert "too many failed" not in text
    # pinning and notes are absent from the synthetic meta.json
    assert "## Pinning\n\nn/a" in text
    assert "## Notes\n\nn/a" in text
    for image in ("latency_vs_throughput.png", "latency_cdf_c4.png"):
        assert f"({image})" in text


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.flagged = 0
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
            return
        if values.get("class") == "flagged":
            self.flagged += 1
        if tag not in ("meta",):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> without an open tag"
        assert self.open[-1] == tag, f"</{tag}> closes <{self.open[-1]}>"
        self.open.pop()


def test_html_is_standalone_and_marks_flags(report: Report) -> None:
    parser = _Collector()
    parser.feed((_root(report) / "report.html").read_text())
    parser.close()
    assert parser.open == []
    assert len(parser.images) == 4
    for src in parser.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :]).startswith(b"\x89PNG")
    assert parser.flagged >= 3


def test_failed_only_run_still_reports(tmp_path: Path) -> None:
    layout = make_run(tmp_path)
    for npz in layout.points_dir.glob(f"*/{RECORDS_FILE}"):
        npz.unlink()
    layout.meta.write_text(json.dumps({"run_id": "bare"}))  # only the required-ish key
    result = build_report(load_run(layout))
    names = {p.name for p in result.files}
    assert "report.html" in names
    assert not any(n.startswith("latency_cdf") for n in names)
    assert result.tables.baseline is None
    assert set(result.tables.under_bound["result"]) == {"none"}
    assert "n/a" in (layout.root / "report.md").read_text()


def test_bad_cdf_concurrency_writes_nothing(tmp_path: Path) -> None:
    layout = make_run(tmp_path)
    with pytest.raises(ValueError, match="choose one of: 1, 4, 16"):
        build_report(load_run(layout), ReportSettings(cdf_concurrency=3))
    assert not (layout.root / "summary.csv").exists()


def test_command_writes_and_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = make_run(tmp_path)
    code = main(
        [
            "report",
            "--run",
            str(layout.root),
            "--p99-bound-ms",
            "10",
            "--cdf-concurrency",
            "1",
            "--baseline-scenario",
            "mlserver-rest",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "mlserver-grpc" in out
    assert f"wrote {layout.root / 'latency_cdf_c1.png'}" in out
    assert "Ratio to baseline mlserver-rest" in (layout.root / "report.md").read_text()
    assert main(["report", "--run", str(layout.root), "--baseline-scenario", "nope"]) == 2
    assert main(["report", "--run", str(tmp_path / "missing")]) == 2
