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


def capacity_table(data: RunData, slo: Slo) -> pd.DataFrame:
    """Series by the highest arrival rate meeting `slo`, with the lowest failing one above it."""
    rows = []
    searched = {c.series: c for c in data.meta.capacity}
    for series, group in _open(data).groupby("series", sort=False):
        part = group.sort_values("level")
        # medians over repeats
        met = [slo.met({str(k): v for k, v in r.items()}) for _, r in part.iterrows()]
        passing = [lvl for lvl, ok in zip(part["level"], met, strict=True) if ok]
        best = max(passing) if passing else math.nan
        floor = best if passing else 0.0
        failing = [
            lvl for lvl, ok in zip(part["level"], met, strict=True) if not ok and lvl > floor
        ]
        row = part[part["level"] == best].iloc[0] if passing else None
        label = next((k for k in searched if k.startswith(f"{series} ")), None)
        closed = data.closed[data.closed["series"] == series]["rps"]
        peak = float(closed.max()) if not closed.empty else math.nan
        rows.append(
            {
                "series": series,
                "capacity_rps": best,
                "up_to": min(failing) if failing else math.nan,
                "achieved_rps": row["rps"] if row is not None else math.nan,
                "p99_ms": row["p99_ms"] if row is not None else math.nan,
                "goodput": row["goodput"] if row is not None else math.nan,
                "closed_peak_rps": peak,
                "of_peak": best / peak if passing and peak > 0 else math.nan,
                "probes": len(part),
                "search": "bracket and bisect" if label else "measured rates",
                "result": (
                    f"{best:.0f} req/s (fails at {min(failing):.0f})"
                    if passing and failing
                    else f"{best:.0f} req/s (the highest rate measured)"
                    if passing
                    else f"none: even {part['level'].min():.0f} req/s missed it "
                    f"({'; '.join(slo.check({str(k): v for k, v in part.iloc[0].items()}))})"
                ),
            }
        )
    return pd.DataFrame(rows)


def rate_latency_figure(data: RunData, slo: Slo | None) -> Figure:
    """p99 (and p50) of response time and service time against the offered rate."""
    fig = new_figure("Latency against offered rate (open loop)")
    ax = fig.add_subplot()
    palette = colors(data)
    frame = _open(data)
    for series, part in frame.groupby("series", sort=False):
        color = palette.get(str(series), "grey")
        draw(ax, part, "level", "p99_ms", color, "-")
        ax.plot(part["level"], part["service_p99_ms"], linestyle="--", color=color)
        ax.plot(part["level"], part["p50_ms"], linestyle=":", color=color, label=str(series))
    bound = slo.latency_ms.get("p99_ms") if slo else None
    if bound:
        ax.axhline(bound, color="red", linewidth=1, label=f"SLO p99 {bound:g} ms")
        for _, row in capacity_table(data, slo).iterrows() if slo else []:
            if math.isfinite(row["capacity_rps"]):
                ax.axvline(row["capacity_rps"], color=palette.get(row["series"], "grey"),
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
    for series, group in _open(data).groupby("series", sort=False):
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
