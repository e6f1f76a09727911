"""A `FigureSpec` drawn with matplotlib (Agg), for report.md's PNGs and the notebook.

Figures are `matplotlib.figure.Figure` objects, not pyplot's global state, so the notebook shows
the very figures the report saves. The legend sits outside the axes, so it never covers data.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from servingbench.atomic import atomic_write_bytes
from servingbench.report.figure import FigureSpec, Key, Marker, Segment, Trace

__all__ = ["draw", "new_figure", "write_png"]

_HATCH = "//"
_KEY_GREY = "#555555"


def new_figure(title: str = "", size: tuple[float, float] = (8, 5)) -> Figure:
    """A figure with its own Agg canvas: no pyplot state, so safe in a report and a notebook."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title)
    return fig


def _errors(
    centre: np.ndarray, low: tuple[float, ...], high: tuple[float, ...]
) -> np.ndarray | None:
    """Asymmetric error bars (2 x n) from interval bounds; None when no point has one."""
    if not low or not np.isfinite(np.asarray(low, dtype=float)).any():
        return None
    below = np.nan_to_num(centre - np.asarray(low, dtype=float), nan=0.0)
    above = np.nan_to_num(np.asarray(high, dtype=float) - centre, nan=0.0)
    return np.vstack([np.maximum(below, 0), np.maximum(above, 0)])


def _marker(kind: Marker, color: str) -> dict[str, Any]:
    if kind == "none":
        return {"marker": "none"}
    if kind == "errorbar":
        return {"marker": "|", "markersize": 10, "markeredgecolor": color}
    face = "none" if kind == "hollow" else color
    return {
        "marker": "D" if kind == "diamond" else "o",
        "markerfacecolor": face,
        "markeredgecolor": color,
        "markersize": 7,
    }


def _trace(ax: Axes, trace: Trace) -> None:
    """The line with its error bars, then the markers: filled, or hollow where flagged."""
    y = np.asarray(trace.y, dtype=float)
    keep = np.isfinite(y)
    if not keep.any():
        return
    x = np.asarray(trace.x)[keep]
    y = y[keep]

    def part(values: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(np.asarray(values, dtype=float)[keep]) if values else ()

    numeric = x.dtype.kind in "fiu"  # else categories (a bar chart's)
    ax.errorbar(
        x,
        y,
        yerr=_errors(y, part(trace.y_low), part(trace.y_high)),
        xerr=_errors(x.astype(float), part(trace.x_low), part(trace.x_high)) if numeric else None,
        linestyle=trace.line,
        color=trace.color,
        capsize=3,
        elinewidth=0.8,
    )
    if trace.marker == "none":
        return
    hollow = np.asarray(trace.hollow, dtype=bool)[keep] if trace.hollow else np.zeros(x.size, bool)
    for flagged in (False, True):
        if (hollow == flagged).any():
            kind: Marker = "hollow" if flagged else trace.marker
            ax.plot(
                x[hollow == flagged],
                y[hollow == flagged],
                linestyle="none",
                **_marker(kind, trace.color),
            )


def _bars(ax: Axes, categories: tuple[str, ...], segments: tuple[Segment, ...]) -> None:
    bottom = np.zeros(len(categories))
    for segment in segments:
        values = np.nan_to_num(np.asarray(segment.values, dtype=float), nan=0.0)
        ax.bar(
            categories,
            values,
            bottom=bottom,
            color=segment.color,
            hatch=_HATCH if segment.hatched else None,
            edgecolor="white",
            linewidth=0.5,
        )
        bottom = bottom + values
    ax.tick_params(axis="x", labelrotation=30, labelsize="small")


def _key(key: Key) -> Line2D:
    return Line2D(
        [],
        [],
        color=_KEY_GREY,
        linestyle=key.line,
        label=key.label,
        **_marker(key.marker, _KEY_GREY),
    )


def _handles(spec: FigureSpec) -> list[Artist]:
    handles: list[Artist] = [
        Patch(
            facecolor=s.color, hatch=_HATCH if s.hatched else None, edgecolor="white", label=s.name
        )
        for s in reversed(spec.segments)  # top of the stack first, as the bars read
    ]
    for label, trace in spec.legend():
        marker = trace.marker if trace.marker != "hollow" else "filled"
        handles.append(
            Line2D(
                [],
                [],
                color=trace.color,
                linestyle=trace.line,
                label=label,
                **(_marker(marker, trace.color) if trace.line == "none" else {}),
            )
        )
    handles += [
        Line2D([], [], color=r.color, linestyle=r.line, label=r.label)
        for r in spec.lines
        if r.label
    ]
    handles += [_key(k) for k in spec.keys]
    return handles


def _axes(ax: Axes, spec: FigureSpec) -> None:
    ax.set_xlabel(spec.x.label)
    ax.set_ylabel(spec.y.label)
    drawn = [t for t in spec.traces if np.isfinite(np.asarray(t.y, dtype=float)).any()]
    if drawn or spec.segments:  # a log axis needs at least one value
        if not spec.categories:  # setting a scale would drop the category names
            ax.set_xscale(spec.x.scale)
        ax.set_yscale(spec.y.scale)
    if spec.x.ticks and drawn:
        ax.set_xticks(spec.x.ticks, [f"{t:g}" for t in spec.x.ticks])
    ax.set_xlim(left=spec.x.low, right=spec.x.high)
    if spec.y.low is not None or spec.y.high is not None:
        ax.set_ylim(bottom=spec.y.low, top=spec.y.high)
    ax.grid(True, which="both", alpha=0.3)


def draw(spec: FigureSpec) -> Figure:
    """The figure, legend outside the axes on the right, notes under the plot."""
    fig = new_figure(size=spec.size)
    ax = fig.add_subplot()
    ax.set_title(spec.title)  # over the axes: the legend beside them stays clear of it
    if spec.segments:
        _bars(ax, spec.categories, spec.segments)
    for trace in spec.traces:
        _trace(ax, trace)
    for ref in spec.lines:
        if math.isfinite(ref.value):
            place = ax.axvline if ref.axis == "x" else ax.axhline
            place(ref.value, color=ref.color, linestyle=ref.line, linewidth=1)
    _axes(ax, spec)
    handles = _handles(spec)
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    if spec.notes:
        fig.supxlabel("; ".join(spec.notes), x=0.01, ha="left", fontsize="small")
    return fig


def write_png(spec: FigureSpec, path: Path) -> Path:
    """The figure as a PNG, written atomically (rendered to memory first)."""
    buf = io.BytesIO()
    draw(spec).savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path
