"""The report's closed-loop figures, each point with its 95 % interval across repeats.

Each function returns a `FigureSpec` (drawn by `png` and `interactive`). Error bars are the
intervals of `report.intervals` (none with one repeat). Flagged points are drawn hollow; points
without records are named under the plot: they stay visible but never pass for clean
measurements.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from servingbench.report.figure import (
    PALETTE,
    Axis,
    FigureSpec,
    Key,
    LineStyle,
    Trace,
    floats,
)
from servingbench.report.load import RunData
from servingbench.runs.records import RequestRecords
from servingbench.runs.summary import level_text

__all__ = [
    "CDF_POINTS",
    "FLAGGED_KEY",
    "INTERVAL_KEY",
    "cdf_steps",
    "check_cdf_level",
    "colors",
    "common_level",
    "error_rate_figure",
    "failed_notes",
    "latency_cdf_figure",
    "level_latency_figure",
    "measured_latency_ms",
    "points_trace",
    "throughput_latency_figure",
]

FLAGGED_KEY = Key("flagged point (hollow)", "none", "hollow")
INTERVAL_KEY = Key("95 % interval across repeats", "none", "errorbar")
_LATENCIES: tuple[tuple[str, LineStyle, str], ...] = (
    ("p50_ms", "solid", "p50"),
    ("p99_ms", "dashed", "p99"),
)
CDF_POINTS = 500
"""Steps of a drawn CDF spread evenly over its share of requests (the tail gets as many more):
a CDF of a million requests reads the same, and report.html stays small."""


def colors(data: RunData) -> dict[str, str]:
    """Line -> colour, in display order: the same line has the same colour in every figure."""
    return {line: PALETTE[i % len(PALETTE)] for i, line in enumerate(data.lines)}


def _bounds(points: pd.DataFrame, column: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    low, high = f"{column}_lo", f"{column}_hi"
    if low not in points:
        return (), ()
    return floats(points[low]), floats(points[high])


def points_trace(
    points: pd.DataFrame,
    x: str,
    y: str,
    *,
    name: str,
    group: str,
    color: str,
    line: LineStyle = "solid",
) -> Trace:
    """Aggregated points of one line (those measured, by x) with their intervals: the y
    column's `_lo/_hi`, and the x column's when it has them (req/s); flagged points hollow."""
    points = points[points["repeats"] > 0].sort_values(x)
    y_low, y_high = _bounds(points, y)
    x_low, x_high = _bounds(points, x)
    return Trace(
        name=name,
        group=group,
        color=color,
        x=floats(points[x]),
        y=floats(points[y]),
        y_low=y_low,
        y_high=y_high,
        x_low=x_low,
        x_high=x_high,
        line=line,
        hollow=tuple(bool(f) for f in points["flagged"]),
    )


def failed_notes(data: RunData) -> tuple[str, ...]:
    """Names the points that have no records (so no place in a figure)."""
    failed = data.points[~data.points["has_records"]]
    if failed.empty:
        return ()
    names = ", ".join(sorted({f"{r.line} at {r.level:g}" for r in failed.itertuples()}))
    return (f"not plotted (no records): {names}",)


def _levels(frame: pd.DataFrame) -> tuple[float, ...]:
    return tuple(sorted(set(floats(frame.loc[frame["repeats"] > 0, "level"]))))


def _latency_figure(
    data: RunData, name: str, x: Axis, x_column: str, title: str, caption: str
) -> FigureSpec:
    agg = data.closed
    traces = [
        points_trace(
            agg[agg["line"] == line],
            x_column,
            column,
            name=f"{line} {label}",
            group=line,
            color=color,
            line=style,
        )
        for line, color in colors(data).items()
        for column, style, label in _LATENCIES
    ]
    return FigureSpec(
        name=name,
        title=title,
        caption=caption,
        x=x,
        y=Axis("latency (ms)", "log"),
        traces=tuple(traces),
        keys=(*(Key(label, style) for _, style, label in _LATENCIES), FLAGGED_KEY, INTERVAL_KEY),
        notes=failed_notes(data),
    )


def throughput_latency_figure(data: RunData) -> FigureSpec:
    """p50 and p99 against achieved req/s, one colour per series: the latency/throughput trade."""
    return _latency_figure(
        data,
        "latency_vs_throughput",
        Axis("throughput (req/s)"),
        "rps",
        "Latency vs throughput",
        "p50 (solid) and p99 (dashed) latency against achieved throughput",
    )


def level_latency_figure(data: RunData) -> FigureSpec:
    """p50 and p99 against the load level (concurrent users)."""
    return _latency_figure(
        data,
        "latency_vs_load",
        Axis("concurrent users (N)", "log", ticks=_levels(data.closed)),
        "level",
        "Latency vs load",
        "p50 (solid) and p99 (dashed) latency against the load level",
    )


def error_rate_figure(data: RunData) -> FigureSpec:
    """Error percentage (median over repeats) against the load level, per series."""
    frame = data.closed.assign(error_pct=data.closed["error_rate"] * 100)
    traces = [
        points_trace(
            frame[frame["line"] == line], "level", "error_pct", name=line, group=line, color=color
        )
        for line, color in colors(data).items()
    ]
    return FigureSpec(
        name="error_rate",
        title="Error rate vs load",
        caption="errors as a percentage of measured requests",
        x=Axis("load level", "log", ticks=_levels(frame)),
        y=Axis("errors (% of requests)", low=0.0),
        traces=tuple(traces),
        keys=(FLAGGED_KEY, INTERVAL_KEY),
        notes=failed_notes(data),
    )


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


def cdf_steps(count: int) -> np.ndarray:
    """Indices (into `count` sorted values) of the CDF steps drawn: `CDF_POINTS` spread over
    the share of requests, as many again over the tail (1 - share from 10 % down to one
    request), the first and the last; every request when there are fewer."""
    if count <= 2 * CDF_POINTS:
        return np.arange(count)
    share = np.concatenate(
        (np.linspace(0, 1, CDF_POINTS), 1 - np.geomspace(0.1, 1 / count, CDF_POINTS))
    )
    return np.unique(np.clip(np.ceil(share * count).astype(int) - 1, 0, count - 1))


def latency_cdf_figure(data: RunData, level: float) -> FigureSpec:
    """Empirical CDF of every measured request at one level, each series' repeats pooled."""
    palette = colors(data)
    at = data.points[
        (data.points["level"] == level)
        & data.points["has_records"]
        & (data.points["load"] == "closed")
    ]
    traces = []
    for line, group in at.groupby("line", sort=False):
        pooled = np.sort(
            np.concatenate([measured_latency_ms(data.records(str(p))) for p in group["point_id"]])
        )
        if pooled.size == 0:
            continue
        flagged = bool(group["flagged"].any())
        steps = cdf_steps(pooled.size)
        label = f"{line} ({len(group)} repeats{', flagged' if flagged else ''})"
        traces.append(
            Trace(
                name=label,
                group=label,
                color=palette[str(line)],
                x=floats(pooled[steps]),
                y=floats((steps + 1) / pooled.size),
                line="dotted" if flagged else "solid",
                marker="none",
            )
        )
    users = level_text("closed", level)  # the CDFs are of closed-loop levels only
    return FigureSpec(
        name=f"latency_cdf_{level:g}",
        title=f"Per-request latency CDF at {users}",
        caption=f"distribution of per-request latency at {users}",
        x=Axis("latency (ms)", "log"),
        y=Axis("fraction of requests"),
        traces=tuple(traces),
        keys=(Key("dotted = a repeat was flagged", "dotted"),),
    )
