"""Open-loop views: latency against offered rate, goodput, and capacity under the SLO.

Response time (from the intended start: what a caller waits when requests arrive on their own
schedule) and service time (from the actual send) are drawn together: where they part, the
generator or the server queued requests. The SLO's bound and each series' knee (the highest
rate that met the SLO) are marked. Capacity comes from the run's own search when it ran one
(`--slo`), else from the rates it measured.
"""

from __future__ import annotations

import math

import pandas as pd

from servingbench.report.figure import Axis, FigureSpec, Key, RefLine, Trace, floats
from servingbench.report.load import RunData
from servingbench.report.plots import FLAGGED_KEY, INTERVAL_KEY, colors, points_trace
from servingbench.runs.point import line_label
from servingbench.runs.slo import Slo, parse_slo

__all__ = [
    "capacity_table",
    "closed_capacity_applies",
    "goodput_figure",
    "has_open",
    "rate_latency_figure",
    "slo_of",
]


def has_open(data: RunData) -> bool:
    return bool((data.aggregate["load"] == "open").any()) if not data.aggregate.empty else False


def slo_of(data: RunData) -> Slo | None:
    text = data.meta.sweep.slo
    return parse_slo(text) if text else None


def closed_capacity_applies(data: RunData) -> bool:
    """Whether "most req/s with p99 within the bound" over the user counts answers anything.

    Not in an SLO search: its closed-loop points are only each server's peak (one user count),
    so that table would say "none" beside the searched capacity and contradict it.
    """
    searched = slo_of(data) is not None and has_open(data)
    return not data.closed.empty and not searched


def _open(data: RunData) -> pd.DataFrame:
    agg = data.aggregate
    return agg[(agg["load"] == "open") & (agg["repeats"] > 0)]


def _judged(data: RunData, group: pd.DataFrame, slo: Slo) -> list[tuple[float, bool, str]]:
    """(rate, met, why) of each rate of one line, by `Slo.judge` on the repeats' records: the
    rule the search itself applies."""
    out = []
    for level, part in group.groupby("level", sort=True):
        records = [
            data.records(str(pid)) if has else None
            for pid, has in zip(part["point_id"], part["has_records"], strict=True)
        ]
        met, why = slo.judge(records)
        out.append((float(str(level)), met, why))
    return out


def capacity_table(data: RunData, slo: Slo) -> pd.DataFrame:
    """Lines by the highest arrival rate meeting `slo`, with the lowest failing one above it.

    With a search (`--slo`) the answer is the search's own, as meta.json records it; otherwise
    each measured rate is judged the way the search judges a probe. `flags` are those of the
    points at the capacity rate (the table marks them).
    """
    rows = []
    searched = {c.series: c for c in data.meta.capacity}
    points = data.points[data.points["load"] == "open"]
    for line, group in points.groupby("line", sort=False):
        first = group.iloc[0]
        label = line_label(
            str(first["series"]), str(first["model"]), int(first["rows_per_request"])
        )
        judged = _judged(data, group, slo)
        search = searched.get(label)
        if search is not None:
            best = search.capacity if search.capacity is not None else math.nan
            limit = search.limit if search.limit is not None else math.nan
        else:
            passing = [rate for rate, met, _ in judged if met]
            best = max(passing) if passing else math.nan
            floor = best if passing else 0.0
            failing = [rate for rate, met, _ in judged if not met and rate > floor]
            limit = min(failing) if failing else math.nan
        agg = _open(data)
        at = agg[(agg["line"] == line) & (agg["level"] == best)]
        row = at.iloc[0] if not at.empty else None
        closed = data.closed[data.closed["line"] == line]["rps"]
        peak = float(closed.max()) if not closed.empty else math.nan
        if math.isfinite(best):
            above = f"fails at {limit:.0f}" if math.isfinite(limit) else "the highest rate measured"
            result = f"{best:.0f} req/s ({above})"
        else:
            lowest = min(judged, key=lambda j: j[0]) if judged else None
            result = (
                f"none: even {lowest[0]:.0f} req/s missed it ({lowest[2]})" if lowest else "none"
            )
        rows.append(
            {
                "line": line,
                "capacity_rps": best,
                "up_to": limit,
                "achieved_rps": row["rps"] if row is not None else math.nan,
                "p99_ms": row["p99_ms"] if row is not None else math.nan,
                "goodput": row["goodput"] if row is not None else math.nan,
                "closed_peak_rps": peak,
                "of_peak": best / peak if math.isfinite(best) and peak > 0 else math.nan,
                "probes": len(judged),
                "search": "bracket and bisect" if search is not None else "measured rates",
                "flags": str(row["flags"]) if row is not None else "",
                "result": result,
            }
        )
    return pd.DataFrame(rows)


def rate_latency_figure(data: RunData, slo: Slo | None) -> FigureSpec:
    """p99 (and p50) of response time and service time against the offered rate."""
    palette = colors(data)
    frame = _open(data)
    traces: list[Trace] = []
    for line, part in frame.groupby("line", sort=False):
        color = palette.get(str(line), "#7f7f7f")
        traces += [
            points_trace(
                part, "level", "p99_ms", name=f"{line} p99 response", group=str(line), color=color
            ),
            points_trace(
                part,
                "level",
                "service_p99_ms",
                name=f"{line} p99 service",
                group=str(line),
                color=color,
                line="dashed",
            ),
            points_trace(
                part,
                "level",
                "p50_ms",
                name=f"{line} p50 response",
                group=str(line),
                color=color,
                line="dotted",
            ),
        ]
    lines: list[RefLine] = []
    bound = slo.latency_ms.get("p99_ms") if slo else None
    if slo is not None and bound:
        lines.append(RefLine("y", bound, "#d62728", "solid", f"SLO p99 {bound:g} ms"))
        lines += [
            RefLine(
                "x", float(row["capacity_rps"]), palette.get(str(row["line"]), "#7f7f7f"), "dashdot"
            )
            for _, row in capacity_table(data, slo).iterrows()
            if math.isfinite(row["capacity_rps"])
        ]
    return FigureSpec(
        name="latency_vs_rate",
        title="Latency against offered rate (open loop)",
        caption=(
            "open loop: response time (from the intended start) and service time against the "
            "offered rate; the SLO and each series' knee marked"
        ),
        x=Axis("offered rate (req/s)"),
        y=Axis("latency (ms)", "log"),
        traces=tuple(traces),
        lines=tuple(lines),
        keys=(
            Key("p99 response time (from the intended start)", "solid"),
            Key("p99 service time (from the send)", "dashed"),
            Key("p50 response time", "dotted"),
            Key("knee: the highest rate meeting the SLO", "dashdot"),
            FLAGGED_KEY,
            INTERVAL_KEY,
        ),
    )


def goodput_figure(data: RunData, slo: Slo) -> FigureSpec:
    """Requests answered within the SLO's latency bound per second, against the offered rate."""
    palette = colors(data)
    frame = _open(data)
    traces = [
        Trace(
            name=str(line),
            group=str(line),
            color=palette.get(str(line), "#7f7f7f"),
            x=floats(part["level"]),
            y=floats(part["goodput"]),
        )
        for line, group in frame.groupby("line", sort=False)
        for part in (group.sort_values("level"),)
    ]
    top = float(frame["level"].max()) if not frame.empty else 1.0
    on_time = Trace(
        name="everything on time",
        group="everything on time",
        color="#7f7f7f",
        x=(0.0, top),
        y=(0.0, top),
        line="dotted",
        marker="none",
    )
    return FigureSpec(
        name="goodput",
        title=f"Goodput: requests within {slo.latency_bound_ms:g} ms per second",
        caption="requests answered within the SLO's bound, per second",
        x=Axis("offered rate (req/s)"),
        y=Axis("goodput (req/s)"),
        traces=(*traces, on_time),
    )
