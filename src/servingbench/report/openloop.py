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
from matplotlib.figure import Figure

from servingbench.report.load import RunData
from servingbench.report.plots import colors, draw, new_figure
from servingbench.runs.point import line_label
from servingbench.runs.slo import Slo, parse_slo

__all__ = ["capacity_table", "goodput_figure", "has_open", "rate_latency_figure", "slo_of"]


def has_open(data: RunData) -> bool:
    return bool((data.aggregate["load"] == "open").any()) if not data.aggregate.empty else False


def slo_of(data: RunData) -> Slo | None:
    text = data.meta.sweep.get("slo")
    return parse_slo(text) if isinstance(text, str) else None


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


def rate_latency_figure(data: RunData, slo: Slo | None) -> Figure:
    """p99 (and p50) of response time and service time against the offered rate."""
    fig = new_figure("Latency against offered rate (open loop)")
    ax = fig.add_subplot()
    palette = colors(data)
    frame = _open(data)
    for series, part in frame.groupby("line", sort=False):
        color = palette.get(str(series), "grey")
        draw(ax, part, "level", "p99_ms", color, "-")
        ax.plot(part["level"], part["service_p99_ms"], linestyle="--", color=color)
        ax.plot(part["level"], part["p50_ms"], linestyle=":", color=color, label=str(series))
    bound = slo.latency_ms.get("p99_ms") if slo else None
    if bound:
        ax.axhline(bound, color="red", linewidth=1, label=f"SLO p99 {bound:g} ms")
        for _, row in capacity_table(data, slo).iterrows() if slo else []:
            if math.isfinite(row["capacity_rps"]):
                ax.axvline(row["capacity_rps"], color=palette.get(row["line"], "grey"),
                           linestyle="-.", linewidth=0.8)  # fmt: skip
    ax.set_xlabel("offered rate (req/s)")
    ax.set_ylabel("latency (ms): p99 response (solid), p99 service (dashed), p50 (dotted)")
    if not frame.empty:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def goodput_figure(data: RunData, slo: Slo) -> Figure:
    """Requests answered within the SLO's latency bound per second, against the offered rate."""
    fig = new_figure(f"Goodput: requests within {slo.latency_bound_ms:g} ms per second")
    ax = fig.add_subplot()
    palette = colors(data)
    for series, group in _open(data).groupby("line", sort=False):
        part = group.sort_values("level")
        ax.plot(part["level"], part["goodput"], marker="o", color=palette.get(str(series), "grey"),
                label=str(series))  # fmt: skip
    top = float(_open(data)["level"].max()) if not _open(data).empty else 1.0
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="everything on time")
    ax.set_xlabel("offered rate (req/s)")
    ax.set_ylabel("goodput (req/s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig
