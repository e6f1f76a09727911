"""The report's figures (matplotlib, Agg), each point drawn with its 95 % interval across repeats.

Figures are built on `matplotlib.figure.Figure` objects, not pyplot's global state, so the
notebook can show the very same figures. Error bars are the intervals of `report.intervals`
(none with one repeat). Flagged points are drawn hollow; points without records are named
under the plot: they stay visible but never pass for clean measurements.
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
    "check_cdf_level",
    "common_level",
    "error_rate_figure",
    "latency_cdf_figure",
    "level_latency_figure",
    "measured_latency_ms",
    "new_figure",
    "save_figure",
    "throughput_latency_figure",
    "write_plots",
]

FLAGGED_NOTE = "hollow marker = flagged point; bars = 95 % interval across repeats"
Style = Literal["-", "--", ":"]
_LATENCIES: tuple[tuple[str, Style, str], ...] = (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99"))


def new_figure(title: str, size: tuple[float, float] = (8, 5)) -> Figure:
    """A figure with its own Agg canvas: no pyplot state, so safe in a report and a notebook."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    return fig


def colors(data: RunData) -> dict[str, str]:
    return {line: f"C{i % 10}" for i, line in enumerate(data.lines)}


def _bars(points: pd.DataFrame, column: str) -> np.ndarray | None:
    """Asymmetric error bars (2 x n) from `<column>_lo/_hi`; None when no interval exists."""
    lo, hi = f"{column}_lo", f"{column}_hi"
    if lo not in points or not points[lo].notna().any():
        return None
    centre = points[column].to_numpy(dtype=float)
    low = np.nan_to_num(centre - points[lo].to_numpy(dtype=float), nan=0.0)
    high = np.nan_to_num(points[hi].to_numpy(dtype=float) - centre, nan=0.0)
    return np.vstack([np.maximum(low, 0), np.maximum(high, 0)])


def draw(ax: Axes, points: pd.DataFrame, x: str, y: str, color: str, style: Style) -> None:
    """A line through the central values; error bars; filled markers for clean points, hollow for
    flagged ones."""
    points = points[points["repeats"] > 0].sort_values(x)
    if points.empty:
        return
    ax.errorbar(
        points[x],
        points[y],
        yerr=_bars(points, y),
        xerr=_bars(points, x) if x == "rps" else None,
        linestyle=style,
        color=color,
        capsize=3,
        elinewidth=0.8,
    )
    for flagged, face in ((False, color), (True, "none")):
        part = points[points["flagged"] == flagged]
        ax.plot(part[x], part[y], linestyle="none", marker="o", markerfacecolor=face,
                markeredgecolor=color, markersize=7)  # fmt: skip


def legend(ax: Axes, data: RunData, styles: tuple[tuple[Style, str], ...]) -> None:
    handles = [Line2D([], [], color=c, label=s) for s, c in colors(data).items()]
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
        names = ", ".join(sorted({f"{r.line} at {r.level:g}" for r in failed.itertuples()}))
        fig.text(0.01, 0.005, f"not plotted (no records): {names}", fontsize="small")


def _latency_figure(data: RunData, x: str, xlabel: str, title: str, log_x: bool) -> Figure:
    fig = new_figure(title)
    ax = fig.add_subplot()
    agg = data.closed
    for line, color in colors(data).items():
        points = agg[agg["line"] == line]
        for column, style, _ in _LATENCIES:
            draw(ax, points, x, column, color, style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency (ms)")
    if (agg["repeats"] > 0).any():  # log axes need at least one positive value
        ax.set_yscale("log")
        ax.set_xscale("log" if log_x else "linear")
    ax.grid(True, which="both", alpha=0.3)
    legend(ax, data, tuple((st, lab) for _, st, lab in _LATENCIES))
    _failed_note(fig, data)
    return fig


def throughput_latency_figure(data: RunData) -> Figure:
    """p50 and p99 against achieved req/s, one colour per series: the latency/throughput trade."""
    return _latency_figure(data, "rps", "throughput (req/s)", "Latency vs throughput", False)


def level_latency_figure(data: RunData) -> Figure:
    """p50 and p99 against the load level (concurrent users)."""
    return _latency_figure(data, "level", "concurrent users (N)", "Latency vs load", True)


def error_rate_figure(data: RunData) -> Figure:
    """Error percentage (median over repeats) against the load level, per series."""
    fig = new_figure("Error rate vs load")
    ax = fig.add_subplot()
    frame = data.closed.assign(error_pct=data.closed["error_rate"] * 100)
    for line, color in colors(data).items():
        draw(ax, frame[frame["line"] == line], "level", "error_pct", color, "-")
    ax.set_xlabel("load level")
    ax.set_ylabel("errors (% of requests)")
    ax.set_xscale("log" if (frame["repeats"] > 0).any() else "linear")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    legend(ax, data, ())
    _failed_note(fig, data)
    return fig


def common_level(data: RunData) -> float | None:
    """The highest user count every series measured (with records); else the highest measured."""
    measured = data.points[data.points["has_records"] & (data.points["load"] == "closed")]
    if measured.empty:
        return None
    sets = [set(g["level"]) for _, g in measured.groupby("line")]
    common = set.intersection(*sets)
    return float(max(common)) if common else float(measured["level"].max())


def check_cdf_level(data: RunData, level: float | None) -> None:
    """A ValueError naming the measured levels when `level` is not one of them."""
    closed = data.points["has_records"] & (data.points["load"] == "closed")
    measured = sorted(set(data.points.loc[closed, "level"]))
    if level is not None and level not in measured:
        raise ValueError(
            f"no measured point at level {level:g} for the CDF; "
            f"choose one of: {', '.join(f'{v:g}' for v in measured)}"
        )


def measured_latency_ms(records: RequestRecords) -> np.ndarray:
    """Sorted response times (ms) of the successful measured requests: what every figure shows."""
    measured = records.measured()
    latency: np.ndarray = np.sort(measured.response_ns[measured.ok]) / 1e6
    return latency


def latency_cdf_figure(data: RunData, level: float) -> Figure:
    """Empirical CDF of every measured request at one level, each series' repeats pooled."""
    fig = new_figure(f"Per-request latency CDF at {level:g}")
    ax = fig.add_subplot()
    palette = colors(data)
    at = data.points[
        (data.points["level"] == level)
        & data.points["has_records"]
        & (data.points["load"] == "closed")
    ]
    for line, group in at.groupby("line", sort=False):
        pooled = np.sort(
            np.concatenate([measured_latency_ms(data.records(str(p))) for p in group["point_id"]])
        )
        if pooled.size == 0:
            continue
        flagged = bool(group["flagged"].any())
        share = np.arange(1, pooled.size + 1) / pooled.size
        label = f"{line} ({len(group)} repeats{', flagged' if flagged else ''})"
        ax.plot(pooled, share, linestyle=":" if flagged else "-", color=palette[str(line)],
                label=label)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", title="dotted = a repeat was flagged")
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    """PNG written atomically (rendered to memory first)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_plots(data: RunData, cdf_level: float | None) -> list[tuple[Path, str]]:
    """Every figure as a PNG in the run folder; returns (path, caption) pairs."""
    from servingbench.report import breakdown, openloop

    root = data.root
    plots: list[tuple[Path, str]] = []
    if openloop.has_open(data):
        slo = openloop.slo_of(data)
        plots.append(
            (
                save_figure(openloop.rate_latency_figure(data, slo), root / "latency_vs_rate.png"),
                "open loop: response time (from the intended start) and service time against "
                "the offered rate; the SLO and each series' knee marked",
            )
        )
        if slo is not None and slo.latency_bound_ms is not None:
            plots.append(
                (
                    save_figure(openloop.goodput_figure(data, slo), root / "goodput.png"),
                    "requests answered within the SLO's bound, per second",
                )
            )
    if data.closed.empty:
        return plots
    table = breakdown.breakdown_table(data)
    if not table.empty and table["server_ms"].notna().any():
        for level in sorted(set(table["level"]))[:2]:
            plots.append(
                (
                    save_figure(
                        breakdown.breakdown_figure(data, level), root / f"breakdown_{level:g}.png"
                    ),
                    f"where the time goes at {level:g} users (means)",
                )
            )
    decision = breakdown.decision_table(data)
    if not decision.empty and decision["model_cost_ms"].nunique() > 1:
        plots.append(
            (
                save_figure(breakdown.decision_figure(data), root / "decision.png"),
                "overhead share against the model's own cost: where the server stops mattering",
            )
        )
    plots += [
        (
            save_figure(throughput_latency_figure(data), root / "latency_vs_throughput.png"),
            "p50 (solid) and p99 (dashed) latency against achieved throughput",
        ),
        (
            save_figure(level_latency_figure(data), root / "latency_vs_load.png"),
            "p50 (solid) and p99 (dashed) latency against the load level",
        ),
        (
            save_figure(error_rate_figure(data), root / "error_rate.png"),
            "errors as a percentage of measured requests",
        ),
    ]
    check_cdf_level(data, cdf_level)
    level = cdf_level or common_level(data)
    if level is not None:
        path = root / f"latency_cdf_{level:g}.png"
        plots.append(
            (
                save_figure(latency_cdf_figure(data, level), path),
                f"distribution of per-request latency at {level:g}",
            )
        )
    return plots
