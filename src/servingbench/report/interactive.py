"""A `FigureSpec` as an interactive Plotly chart, for report.html.

Hovering a point shows its value with its interval (and whether it was flagged); a click on a
legend entry hides or shows that series (a double click isolates it); dragging zooms, a double
click on the plot resets. The chart is a `<div>` and a call to plotly.js; the library itself is
`plotly_js()`, for the page to embed once, so the page opens offline and carries it a single
time however many charts it has.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from servingbench.report.figure import INTERVAL, Axis, FigureSpec, Key, LineStyle, Segment, Trace

__all__ = ["HEIGHT_PX", "figure_div", "plotly_figure", "plotly_js"]

HEIGHT_PX = 480
_DASH: dict[LineStyle, str] = {
    "solid": "solid",
    "dashed": "dash",
    "dotted": "dot",
    "dashdot": "dashdot",
    "none": "solid",
}
_SYMBOL = {
    "filled": "circle",
    "hollow": "circle-open",
    "diamond": "diamond",
    "none": "circle",
    "errorbar": "line-ns-open",
}
_KEY_GREY = "#555555"
_CONFIG = {"displaylogo": False, "responsive": True}


def plotly_js() -> str:
    """plotly.js, as shipped with the plotly package: one `<script>` in the page's head."""
    return "window.PlotlyConfig = {MathJaxConfig: 'local'};\n" + str(get_plotlyjs())


def _num(value: float) -> str:
    """A figure as a reader wants it in a tooltip: three or four significant digits."""
    if not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _label(value: object) -> str:
    return value.replace("\n", "<br>") if isinstance(value, str) else str(value)


def _with_interval(value: float, low: float | None, high: float | None) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return _num(value)
    return f"{_num(value)} ({INTERVAL} {_num(low)} to {_num(high)})"


def _at(values: tuple[float, ...], i: int) -> float | None:
    return values[i] if values else None


def _hover(spec: FigureSpec, trace: Trace, i: int) -> str:
    x = trace.x[i]
    x_text = (
        x.replace("\n", " ")
        if isinstance(x, str)
        else _with_interval(x, _at(trace.x_low, i), _at(trace.x_high, i))
    )
    y_text = _with_interval(trace.y[i], _at(trace.y_low, i), _at(trace.y_high, i))
    flagged = "<br><i>flagged point</i>" if trace.hollow and trace.hollow[i] else ""
    return f"<b>{trace.name}</b><br>{spec.x.label}: {x_text}<br>{spec.y.label}: {y_text}{flagged}"


def _error(centre: np.ndarray, low: tuple[float, ...], high: tuple[float, ...]) -> dict[str, Any]:
    if not low or not np.isfinite(np.asarray(low, dtype=float)).any():
        return {"visible": False}
    below = np.maximum(np.nan_to_num(centre - np.asarray(low, dtype=float), nan=0.0), 0)
    above = np.maximum(np.nan_to_num(np.asarray(high, dtype=float) - centre, nan=0.0), 0)
    return {
        "type": "data",
        "symmetric": False,
        "array": above.tolist(),
        "arrayminus": below.tolist(),
        "thickness": 1,
        "width": 3,
    }


def _hover_text(spec: FigureSpec, trace: Trace, keep: list[int]) -> dict[str, Any]:
    """Hover text per point where a point has more to say than its x and y (an interval, a
    flag, a category); else one template, so a long line (a CDF) stays small in the page."""
    per_point = (
        bool(trace.y_low or trace.x_low)
        or any(trace.hollow)
        or (bool(keep) and isinstance(trace.x[0], str))
    )
    if per_point:
        return {
            "text": [_hover(spec, trace, i) for i in keep],
            "hovertemplate": "%{text}<extra></extra>",
        }
    template = f"<b>{trace.name}</b><br>{spec.x.label}: %{{x:.4~g}}<br>{spec.y.label}: %{{y:.4~g}}"
    return {"hovertemplate": template + "<extra></extra>"}


def _trace(spec: FigureSpec, trace: Trace, first: bool) -> go.Scatter:
    keep = [i for i, v in enumerate(trace.y) if math.isfinite(v)]

    def part(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(values[i] for i in keep) if values else ()

    x, y = part(trace.x), np.asarray(part(trace.y), dtype=float)
    numeric_x = bool(x) and not isinstance(x[0], str)
    hollow = part(trace.hollow) or (False,) * len(keep)
    symbols = [_SYMBOL["hollow" if h else trace.marker] for h in hollow]
    mode = "+".join(
        m for m, on in (("lines", trace.line != "none"), ("markers", trace.marker != "none")) if on
    )
    return go.Scatter(
        x=np.asarray(x, dtype=float) if numeric_x else [_label(v) for v in x],
        y=y,
        name=trace.group,
        legendgroup=trace.group,
        showlegend=first,
        mode=mode or "lines",
        line={"color": trace.color, "dash": _DASH[trace.line]},
        marker={
            "color": trace.color,
            "size": 8,
            "symbol": symbols if any(hollow) else _SYMBOL[trace.marker],
            "line": {"color": trace.color, "width": 1.5},
        },
        error_y=_error(y, part(trace.y_low), part(trace.y_high)),
        error_x=_error(np.asarray(x, dtype=float), part(trace.x_low), part(trace.x_high))
        if numeric_x
        else {"visible": False},
        **_hover_text(spec, trace, keep),
    )


def _bar(spec: FigureSpec, segment: Segment, rank: int) -> go.Bar:
    values = [v if math.isfinite(v) else 0.0 for v in segment.values]
    return go.Bar(
        x=[_label(c) for c in spec.categories],
        y=values,
        name=segment.name,
        legendrank=rank,
        marker={
            "color": segment.color,
            "pattern": {"shape": "/" if segment.hatched else ""},
            "line": {"color": "white", "width": 0.5},
        },
        text=[
            f"<b>{c.replace(chr(10), ' ')}</b><br>{segment.name}: {_num(v)} ({spec.y.label})"
            for c, v in zip(spec.categories, values, strict=True)
        ],
        textposition="none",
        hovertemplate="%{text}<extra></extra>",
    )


def _key(key: Key) -> go.Scatter:
    """A legend entry that explains a style: a trace without data."""
    mode = (
        "lines" if key.marker == "none" else ("markers" if key.line == "none" else "lines+markers")
    )
    return go.Scatter(
        x=[None],
        y=[None],
        name=key.label,
        mode=mode,
        line={"color": _KEY_GREY, "dash": _DASH[key.line]},
        marker={"color": _KEY_GREY, "size": 8, "symbol": _SYMBOL[key.marker]},
        hoverinfo="skip",
    )


def _axis(axis: Axis, categorical: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"title": {"text": axis.label}, "showgrid": True}
    if categorical:
        return out | {"type": "category"}
    out["type"] = axis.scale
    if axis.low is not None and axis.high is not None:
        bounds = (axis.low, axis.high)
        out["range"] = [math.log10(b) for b in bounds] if axis.scale == "log" else list(bounds)
    elif axis.low == 0 and axis.scale == "linear":
        out["rangemode"] = "tozero"
    if axis.ticks:
        out["tickvals"] = list(axis.ticks)
        out["ticktext"] = [f"{t:g}" for t in axis.ticks]
    return out


def plotly_figure(spec: FigureSpec) -> go.Figure:
    """The chart: bars stacked from the axis up, then the traces, reference lines as shapes."""
    fig = go.Figure()
    count = len(spec.segments)
    for i, segment in enumerate(spec.segments):
        fig.add_trace(_bar(spec, segment, rank=count - i))  # the top of the stack listed first
    seen: set[str] = set()
    for trace in spec.traces:
        fig.add_trace(_trace(spec, trace, trace.group not in seen))
        seen.add(trace.group)
    for ref in spec.lines:
        if not math.isfinite(ref.value):
            continue
        across = {"x0": 0, "x1": 1}
        place = (
            {"xref": "x", "x0": ref.value, "x1": ref.value, "yref": "paper", "y0": 0, "y1": 1}
            if ref.axis == "x"
            else {"yref": "y", "y0": ref.value, "y1": ref.value, "xref": "paper", **across}
        )
        fig.add_shape(
            type="line",
            line={"color": ref.color, "dash": _DASH[ref.line], "width": 1},
            name=ref.label,
            showlegend=bool(ref.label),
            **place,
        )
    for key in spec.keys:
        fig.add_trace(_key(key))
    title: dict[str, Any] = {"text": spec.title}
    if spec.notes:
        title["subtitle"] = {"text": "; ".join(spec.notes)}
    fig.update_layout(
        title=title,
        template="plotly_white",
        barmode="stack",
        hovermode="closest",
        height=HEIGHT_PX,
        xaxis=_axis(spec.x, categorical=bool(spec.categories)),
        yaxis=_axis(spec.y, categorical=False),
        legend={"font": {"size": 11}},
        margin={"t": 80 if spec.notes else 60},
    )
    return fig


def figure_div(spec: FigureSpec) -> str:
    """The chart as an HTML fragment (a `<div>` and its script), without plotly.js."""
    html: str = pio.to_html(
        plotly_figure(spec),
        full_html=False,
        include_plotlyjs=False,
        div_id=f"figure-{spec.name}",
        config=_CONFIG,
        default_width="100%",
        default_height=f"{HEIGHT_PX}px",
    )
    return html
