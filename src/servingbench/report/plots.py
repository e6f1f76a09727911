"""The report's figures (matplotlib, Agg): latency vs throughput and vs concurrency, errors, CDF.

Figures are built on `matplotlib.figure.Figure` objects, not pyplot's global state, so the
notebook can show the very same figures. Flagged points are drawn hollow (failed ones are
absent and named under the plot): they stay visible but never pass for clean measurements.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from servingbench.atomic import atomic_write_bytes
from servingbench.report.load import RunData
from servingbench.runs.records import RequestRecords

__all__ = [
    "FLAGGED_NOTE",
    "check_cdf_concurrency",
    "common_concurrency",
    "concurrency_latency_figure",
    "error_rate_figure",
    "latency_cdf_figure",
    "measured_latency_ms",
    "new_figure",
    "save_figure",
    "throughput_latency_figure",
    "write_plots",
]

FLAGGED_NOTE = "hollow marker = flagged point (client-bound, unstable or errors)"
Style = Literal["-", "--", ":"]
_LATENCIES: tuple[tuple[str, Style, str], ...] = (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99"))


def new_figure(title: str, size: tuple[float, float] = (8, 5)) -> Figure:
    """A figure with its own Agg canvas: no pyplot state, so safe in a report and a notebook."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    return fig


def _colors(data: RunData) -> dict[str, str]:
    return {s: f"C{i % 10}" for i, s in enumerate(data.series)}


def _draw(ax: Axes, points: pd.DataFrame, x: str, y: str, color: str, style: Style) -> None:
    """A line through every measured point; filled markers for clean points, hollow for flagged."""
    points = points[points["has_records"]].sort_values(x)
    ax.plot(points[x], points[y], linestyle=style, color=color)
    for flagged, face in ((False, color), (True, "none")):
        part = points[points["flagged"] == flagged]
        ax.plot(
            part[x],
            part[y],
            linestyle="none",
            marker="o",
            markerfacecolor=face,
            markeredgecolor=color,
            markersize=7,
        )


def _legend(ax: Axes, data: RunData, styles: tuple[tuple[Style, str], ...]) -> None:
    colors = _colors(data)
    handles = [Line2D([], [], color=c, label=s) for s, c in colors.items()]
    handles += [Line2D([], [], color="grey", linestyle=st, label=lab) for st, lab in styles]
    handles.append(
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markerfacecolor="none",
            markeredgecolor="grey",
            label=FLAGGED_NOTE,
        )
    )
    ax.legend(handles=handles, fontsize="small")


def _failed_note(fig: Figure, data: RunData) -> None:
    failed = data.points[~data.points["has_records"]]
    if not failed.empty:
        names = ", ".join(f"{r.series} N={r.concurrency}" for r in failed.itertuples())
        fig.text(0.01, 0.005, f"not plotted (no records): {names}", fontsize="small")


def _latency_figure(data: RunData, x: str, xlabel: str, title: str, log_x: bool) -> Figure:
    fig = new_figure(title)
    ax = fig.add_subplot()
    for series, color in _colors(data).items():
        points = data.points[data.points["series"] == series]
        for column, style, _ in _LATENCIES:
            _draw(ax, points, x, column, color, style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency (ms)")
    if data.points["has_records"].any():  # log axes need at least one positive value
        ax.set_yscale("log")
        ax.set_xscale("log" if log_x else "linear")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, data, tuple((st, lab) for _, st, lab in _LATENCIES))
    _failed_note(fig, data)
    return fig


def throughput_latency_figure(data: RunData) -> Figure:
    """p50 and p99 against achieved req/s, one colour per series: the latency/throughput trade."""
    return _latency_figure(data, "rps", "throughput (req/s)", "Latency vs throughput", False)


def concurrency_latency_figure(data: RunData) -> Figure:
    """p50 and p99 against the number of concurrent users."""
    return _latency_figure(
        data, "concurrency", "concurrent users (N)", "Latency vs concurrency", True
    )


def error_rate_figure(data: RunData) -> Figure:
    """Error percentage against concurrency, per series."""
    fig = new_figure("Error rate vs concurrency")
    ax = fig.add_subplot()
    frame = data.points.assign(error_pct=data.points["error_rate"] * 100)
    for series, color in _colors(data).items():
        _draw(ax, frame[frame["series"] == series], "concurrency", "error_pct", color, "-")
    ax.set_xlabel("concurrent users (N)")
    ax.set_ylabel("errors (% of requests)")
    ax.set_xscale("log" if frame["has_records"].any() else "linear")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    _legend(ax, data, ())
    _failed_note(fig, data)
    return fig


def common_concurrency(data: RunData) -> int | None:
    """The highest concurrency every series measured (with records); else the highest measured."""
    measured = data.points[data.points["has_records"]]
    if measured.empty:
        return None
    sets = [set(g["concurrency"]) for _, g in measured.groupby("series")]
    common = set.intersection(*sets)
    return int(max(common)) if common else int(measured["concurrency"].max())


def check_cdf_concurrency(data: RunData, concurrency: int | None) -> None:
    """A ValueError naming the measured concurrencies when `concurrency` is not one of them."""
    measured = sorted(set(data.points.loc[data.points["has_records"], "concurrency"]))
    if concurrency is not None and concurrency not in measured:
        raise ValueError(
            f"no measured point at concurrency {concurrency} for the CDF; "
            f"choose one of: {', '.join(map(str, measured))}"
        )


def measured_latency_ms(records: RequestRecords) -> np.ndarray:
    """Sorted latencies (ms) of the successful post-warm-up requests: what every figure shows."""
    measured = records.measured()
    latency: np.ndarray = np.sort(measured.latency_ns[measured.ok]) / 1e6
    return latency


def latency_cdf_figure(data: RunData, concurrency: int) -> Figure:
    """Empirical CDF of successful, post-warm-up request latencies per series at one concurrency."""
    fig = new_figure(f"Per-request latency CDF at N={concurrency}")
    ax = fig.add_subplot()
    colors = _colors(data)
    at = data.points[(data.points["concurrency"] == concurrency) & data.points["has_records"]]
    for row in at.itertuples():
        latency_ms = measured_latency_ms(data.records(str(row.point_id)))
        if latency_ms.size == 0:
            continue
        share = np.arange(1, latency_ms.size + 1) / latency_ms.size
        label = f"{row.series}{' (flagged: ' + str(row.flags) + ')' if row.flagged else ''}"
        style = ":" if row.flagged else "-"
        ax.plot(latency_ms, share, linestyle=style, color=colors[str(row.series)], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", title="dotted = flagged point")
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    """PNG written atomically (rendered to memory first)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_plots(data: RunData, cdf_concurrency: int | None) -> list[tuple[Path, str]]:
    """Every figure as a PNG in the run folder; returns (path, caption) pairs."""
    root = data.root
    plots = [
        (
            save_figure(throughput_latency_figure(data), root / "latency_vs_throughput.png"),
            "p50 (solid) and p99 (dashed) latency against achieved throughput",
        ),
        (
            save_figure(concurrency_latency_figure(data), root / "latency_vs_concurrency.png"),
            "p50 (solid) and p99 (dashed) latency against concurrent users",
        ),
        (
            save_figure(error_rate_figure(data), root / "error_rate.png"),
            "errors as a percentage of measured requests",
        ),
    ]
    check_cdf_concurrency(data, cdf_concurrency)
    level = cdf_concurrency or common_concurrency(data)
    if level is not None:
        path = root / f"latency_cdf_c{level}.png"
        plots.append(
            (
                save_figure(latency_cdf_figure(data, level), path),
                f"distribution of per-request latency at N={level}",
            )
        )
    return plots
