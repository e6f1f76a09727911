"""The committed sample run stays readable by the current code, and a report builds from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from servingbench.paths import results_dir
from servingbench.report.build import build_report
from servingbench.report.load import load_run
from servingbench.report.settings import ReportSettings
from servingbench.servers import scenarios

SAMPLE = results_dir() / "sample"


@pytest.mark.skipif(not (SAMPLE / "meta.json").is_file(), reason="no committed sample run")
def test_sample_run_builds_a_report(tmp_path: Path) -> None:
    copy = tmp_path / "sample"
    shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("*.png", "*.html", "*.md", "*.csv"))
    data = load_run(str(copy))
    assert set(data.points["scenario"]) <= set(scenarios())  # the backends of its day
    assert len(set(data.points["backend"])) >= 3
    assert (data.points["errors"] == 0).all()
    build_report(data, ReportSettings(), None)
    assert (copy / "report.html").is_file()
    assert (copy / "summary.csv").is_file()
