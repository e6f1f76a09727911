"""Which figures a report has, in order, and their PNGs in the run folder.

Open-loop views first (when the run has open-loop points), then the breakdown at the two
lowest user counts (when a server reports its own timing), the decision chart (when the run
measured several model costs), latency against throughput and load, the error rate, and the
latency CDF at one level.
"""

from __future__ import annotations

from pathlib import Path

from servingbench.report import breakdown, openloop, plots
from servingbench.report.figure import FigureSpec
from servingbench.report.load import RunData
from servingbench.report.png import write_png

__all__ = ["report_figures", "write_plots"]


def report_figures(data: RunData, cdf_level: float | None) -> list[FigureSpec]:
    """Every figure of the report (`cdf_level`: see `ReportSettings.cdf_level`)."""
    figures: list[FigureSpec] = []
    if openloop.has_open(data):
        slo = openloop.slo_of(data)
        figures.append(openloop.rate_latency_figure(data, slo))
        if slo is not None and slo.latency_bound_ms is not None:
            figures.append(openloop.goodput_figure(data, slo))
    if data.closed.empty:
        return figures
    table = breakdown.breakdown_table(data)
    if breakdown.has_breakdown(table):
        figures += [
            breakdown.breakdown_figure(data, level) for level in sorted(set(table["level"]))[:2]
        ]
    if breakdown.varies_cost(data):
        figures.append(breakdown.decision_figure(data))
    figures += [
        plots.throughput_latency_figure(data),
        plots.level_latency_figure(data),
        plots.error_rate_figure(data),
    ]
    plots.check_cdf_level(data, cdf_level)
    level = cdf_level or plots.common_level(data)
    if level is not None:
        figures.append(plots.latency_cdf_figure(data, level))
    return figures


def write_plots(data: RunData, cdf_level: float | None) -> list[tuple[Path, FigureSpec]]:
    """Every figure as `<name>.png` in the run folder; returns (path, figure) pairs."""
    return [
        (write_png(spec, data.root / f"{spec.name}.png"), spec)
        for spec in report_figures(data, cdf_level)
    ]
