"""A figure's content, decided once and drawn twice: as a PNG (`png`) and as an interactive chart
(`interactive`).

The figure functions of `plots`, `breakdown` and `openloop` build a `FigureSpec` from a run: what
is drawn, in which colour and style, with which intervals, which points are flagged, what the
legend and the caption say. The renderers only lay it out, so the PNG of report.md and the chart
of report.html cannot disagree (as `document` does for the text).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "INTERVAL",
    "PALETTE",
    "Axis",
    "FigureSpec",
    "Key",
    "LineStyle",
    "RefLine",
    "Segment",
    "Trace",
    "floats",
]

LineStyle = Literal["solid", "dashed", "dotted", "dashdot", "none"]
Scale = Literal["linear", "log"]
Marker = Literal["none", "filled", "hollow", "diamond", "errorbar"]
"""How points are marked; `errorbar` only in a `Key` (an interval's bar)."""

INTERVAL = "95 % interval"
"""What a trace's low and high bounds are, as hover text and legends name them."""

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
"""Series colours (matplotlib's default cycle), as hex so both renderers read them."""


def floats(values: Iterable[object]) -> tuple[float, ...]:
    """Plain floats (NaN for a missing value): what a spec stores, whatever pandas held."""
    out = []
    for value in values:
        try:
            out.append(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            out.append(math.nan)
    return tuple(out)


@dataclass(frozen=True)
class Axis:
    """An axis: its label (with the unit), scale, optional range and tick positions."""

    label: str
    scale: Scale = "linear"
    low: float | None = None
    high: float | None = None
    ticks: tuple[float, ...] = ()
    """Positions to label (e.g. the measured user counts); empty: the renderer's choice."""


@dataclass(frozen=True)
class Trace:
    """A line and/or markers. Points whose y is NaN are left out by both renderers.

    `group` is the legend entry the trace belongs to: a series' p50 and p99 share one, so a
    click on it shows or hides both. `hollow[i]` marks point i as flagged (a hollow marker).
    `y_low`/`y_high` (and `x_low`/`x_high`) bound each point's `INTERVAL`: error bars, and the
    hover text.
    """

    name: str
    group: str
    color: str
    x: tuple[float, ...] | tuple[str, ...]
    y: tuple[float, ...]
    y_low: tuple[float, ...] = ()
    y_high: tuple[float, ...] = ()
    x_low: tuple[float, ...] = ()
    x_high: tuple[float, ...] = ()
    line: LineStyle = "solid"
    marker: Marker = "filled"
    hollow: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Segment:
    """One stacked part of every bar of a bar chart: its value for each category."""

    name: str
    color: str
    values: tuple[float, ...]
    hatched: bool = False
    """Drawn with a pattern: a part that is estimated or unexplained, not measured as such."""


@dataclass(frozen=True)
class RefLine:
    """A reference line across the plot: at x = value (`axis="x"`) or y = value."""

    axis: Literal["x", "y"]
    value: float
    color: str
    line: LineStyle = "dotted"
    label: str = ""
    """Its legend entry; none when empty (the caption or a `Key` explains it)."""


@dataclass(frozen=True)
class Key:
    """A legend entry that explains a style rather than naming a series."""

    label: str
    line: LineStyle = "solid"
    marker: Marker = "none"


@dataclass(frozen=True)
class FigureSpec:
    """One figure: `name` is its file stem (`<name>.png`) and its id in report.html.

    A bar chart has `categories` (its x values) and `segments`, stacked in order from the
    axis up; traces drawn over it use the categories as x. `notes` are said under the plot.
    """

    name: str
    title: str
    caption: str
    x: Axis
    y: Axis
    traces: tuple[Trace, ...] = ()
    categories: tuple[str, ...] = ()
    segments: tuple[Segment, ...] = ()
    lines: tuple[RefLine, ...] = ()
    keys: tuple[Key, ...] = ()
    notes: tuple[str, ...] = ()
    size: tuple[float, float] = (10.0, 5.0)
    """Inches, for the PNG (the interactive chart takes the page's width)."""

    def legend(self) -> list[tuple[str, Trace]]:
        """(label, the first trace) of each group, in order: one legend entry per group."""
        seen: dict[str, Trace] = {}
        for trace in self.traces:
            seen.setdefault(trace.group, trace)
        return list(seen.items())
