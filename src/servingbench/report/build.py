"""`build_report`: a run folder in, its report files (CSV, PNG, Markdown, HTML) out, in the folder.

Everything is checked before anything is written, so a bad option never leaves half a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servingbench.report.compare import write_comparison
from servingbench.report.document import build_document
from servingbench.report.gallery import write_plots
from servingbench.report.html import write_html
from servingbench.report.load import RunData
from servingbench.report.markdown import write_markdown
from servingbench.report.plots import check_cdf_level
from servingbench.report.settings import ReportSettings
from servingbench.report.summary import run_summary
from servingbench.report.tables import ReportTables, build_tables, write_tables
from servingbench.report.verdict import verdict_sentences
from servingbench.runs.summary import SUMMARY_FILE, RunSummary

__all__ = ["Report", "build_report"]


@dataclass(frozen=True)
class Report:
    """What a build produced: the tables (for printing), summary.json's content (with the
    run's gates judged again) and every file written."""

    tables: ReportTables
    verdict: list[str]
    files: list[Path]
    summary: RunSummary


def build_report(
    data: RunData, settings: ReportSettings | None = None, baseline: RunData | None = None
) -> Report:
    """Write summary.csv, the comparison CSVs, the plots, report.md, report.html and
    summary.json into the run.

    With `baseline`, also comparison.csv/.md against that run. Raises ValueError for a run
    without points or an option that does not fit the run (the message lists what does).
    """
    settings = settings or ReportSettings()
    if data.points.empty:
        raise ValueError(f"run {data.run_id} has no finished points yet (no points/*/point.json)")
    tables = build_tables(data, settings)
    check_cdf_level(data, settings.cdf_level)
    files = write_tables(tables, data.root)
    plots = write_plots(data, settings.cdf_level)
    files += [path for path, _ in plots]
    blocks = build_document(data, tables, plots)
    files.append(write_markdown(blocks, data.root / "report.md"))
    files.append(write_html(blocks, data.root / "report.html", f"servingbench {data.run_id}"))
    verdict = verdict_sentences(data, tables)
    summary = run_summary(data, tables, verdict, settings, "report")
    summary.write(data.root / SUMMARY_FILE)
    files.append(data.root / SUMMARY_FILE)
    if baseline is not None:
        files += write_comparison(data, baseline, settings.min_effect)
    return Report(tables, verdict, files, summary)
