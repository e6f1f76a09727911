"""Where the time goes, and when the choice of server matters.

Breakdown, per closed-loop point (means, medians over repeats):
  client latency = server time + outside (network, client, and queueing in front of the server)
  server time    = model + queue + framework (protocol, validation, the event loop, encoding)
Server time, model and queue come from the server's own metrics (`sweep.server_timing`); a
backend that counts no model stage is given the model's in-process cost instead (marked).

Decision chart: for each series, the overhead share (client latency minus the model's own
in-process cost, divided by client latency) against that cost, across models and rows per
request, at the lowest load measured (so queueing is not counted as overhead). Where the share
falls under 10 %, the model dominates and the choice of server stops mattering; the crossover
table says at which model cost each stock server comes within 10 % of our service.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from servingbench.report.load import RunData
from servingbench.report.plots import colors, new_figure

__all__ = [
    "MATTERS_BELOW",
    "WITHIN",
    "breakdown_figure",
    "breakdown_table",
    "crossovers",
    "decision_figure",
    "decision_table",
    "varies_cost",
]

MATTERS_BELOW = 0.10
"""Overhead share under which the server no longer matters much."""
WITHIN = 0.10
"""How close (relative latency) a server must come to ours to count as "as fast"."""


def breakdown_table(data: RunData) -> pd.DataFrame:
    agg = data.aggregate
    closed = agg[(agg["load"] == "closed") & (agg["repeats"] > 0)].copy()
    if closed.empty:
        return pd.DataFrame()
    model = closed["model_ms"].where(closed["model_ms"].notna(), closed["model_cost_ms"])
    queue = closed["queue_ms"].fillna(0.0)
    out = pd.DataFrame(
        {
            "series": closed["series"],
            "model_name": closed["model"],
            "rows": closed["rows_per_request"],
            "level": closed["level"],
            "client_ms": closed["avg_ms"],
            "server_ms": closed["server_ms"],
            "outside_ms": closed["avg_ms"] - closed["server_ms"],
            "model_ms": model,
            "model_source": np.where(closed["model_ms"].notna(), "metrics", "in-process"),
            "queue_ms": closed["queue_ms"],
            "framework_ms": closed["server_ms"] - model - queue,
            "header_ms": closed["header_ms"],
        }
    )
    return out.reset_index(drop=True)


def breakdown_figure(data: RunData, level: float) -> Figure:
    """Stacked bars at one level: model, queue, framework, outside (network and client)."""
    table = breakdown_table(data)
    fig = new_figure(f"Where a request's time goes at {level:g} (mean ms)", (9, 5))
    ax = fig.add_subplot()
    part = table[table["level"] == level] if not table.empty else table
    labels = [f"{r.series}\n{r.model_name} x{r.rows}" for r in part.itertuples()]
    bottom = np.zeros(len(part))
    for column, name, color in (
        ("model_ms", "model", "C2"),
        ("queue_ms", "queue (batch or thread)", "C4"),
        ("framework_ms", "framework (server minus model and queue)", "C1"),
        ("outside_ms", "outside the server (network, client, queue before it)", "C7"),
    ):
        values = part[column].fillna(0.0).clip(lower=0).to_numpy() if len(part) else bottom
        ax.bar(labels, values, bottom=bottom, label=name, color=color)
        bottom = bottom + values
    ax.set_ylabel("ms per request")
    ax.tick_params(axis="x", labelrotation=30, labelsize="small")
    ax.legend(fontsize="small")
    return fig


def decision_table(data: RunData) -> pd.DataFrame:
    """Per series, model and rows, at its lowest closed-loop level: cost, latency, share, and
    the latency relative to our fastest series for the same model and rows."""
    agg = data.aggregate
    closed = agg[(agg["load"] == "closed") & (agg["repeats"] > 0) & agg["model_cost_ms"].notna()]
    if closed.empty:
        return pd.DataFrame()
    lowest = closed.loc[closed.groupby(["series", "model", "rows_per_request"])["level"].idxmin()]
    ours = data.ours
    rows = []
    for r in lowest.itertuples():
        same = lowest[
            (lowest["model"] == r.model) & (lowest["rows_per_request"] == r.rows_per_request)
        ]
        mine = same[same["backend"].isin(ours)]
        best_ours = float(mine["avg_ms"].min()) if not mine.empty else math.nan
        client_ms, cost_ms = float(r.avg_ms), float(r.model_cost_ms)  # type: ignore[arg-type]
        overhead = client_ms - cost_ms
        rows.append(
            {
                "series": r.series,
                "backend": r.backend,
                "model_name": r.model,
                "rows": r.rows_per_request,
                "level": r.level,
                "model_cost_ms": cost_ms,
                "client_ms": client_ms,
                "overhead_ms": overhead,
                "overhead_share": overhead / client_ms if client_ms > 0 else math.nan,
                "vs_ours": client_ms / best_ours if best_ours > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows).sort_values(["series", "model_cost_ms"]).reset_index(drop=True)


def decision_figure(data: RunData) -> Figure:
    table = decision_table(data)
    fig = new_figure("Overhead share against the model's own cost (lowest load)")
    ax = fig.add_subplot()
    palette = colors(data)
    for series, group in table.groupby("series", sort=False) if not table.empty else []:
        part = group.sort_values("model_cost_ms")
        ax.plot(part["model_cost_ms"], 100 * part["overhead_share"], marker="o",
                color=palette.get(str(series), "grey"), label=str(series))  # fmt: skip
    ax.axhline(
        100 * MATTERS_BELOW, color="grey", linestyle=":", label="10 %: the server stops mattering"
    )
    ax.set_xscale("log")
    ax.set_xlabel("model cost per request, in-process (ms)")
    ax.set_ylabel("overhead: share of client latency (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def varies_cost(data: RunData) -> bool:
    """Whether the run varied the model's cost (several models or rows per request): the only
    runs a decision chart, and its sentences, say anything about."""
    table = decision_table(data)
    return not table.empty and table["model_cost_ms"].nunique() > 1


def _work(row: pd.Series) -> str:
    rows = int(row["rows"])
    return f"{row['model_name']}, {rows} row{'s' if rows != 1 else ''}"


def crossovers(data: RunData) -> list[str]:
    """Plain sentences for a run that varied the model's cost: per series, from which model
    cost its overhead falls under 10 % of the latency (or that it never did), and for a stock
    server, from which cost it comes within 10 % of our service (or how far it stayed)."""
    if not varies_cost(data):
        return []
    table = decision_table(data)
    ours = data.ours
    out = []
    for series, group in table.groupby("series", sort=False):
        part = group.sort_values("model_cost_ms")
        low = part[part["overhead_share"] < MATTERS_BELOW]
        top = part["model_cost_ms"].max()
        if low.empty:
            text = (
                f"{series}: at every measured model cost, up to {top:.2f} ms, its overhead "
                f"was at least {100 * part['overhead_share'].min():.0f} % of the latency, so "
                "the server it runs on mattered throughout"
            )
        else:
            first = low.iloc[0]
            text = (
                f"{series}: its overhead fell under 10 % of the latency from a model cost of "
                f"{first['model_cost_ms']:.2f} ms ({_work(first)}); from there the server "
                "hardly matters"
            )
        if part["backend"].iloc[0] not in ours and part["vs_ours"].notna().any():
            close = part[part["vs_ours"] <= 1 + WITHIN]
            if not close.empty:
                first = close.iloc[0]
                how = (
                    f"was faster than our service ({first['vs_ours']:.2f}x its latency)"
                    if first["vs_ours"] < 1 - WITHIN
                    else "came within 10 % of our service's latency"
                )
                text += f"; it {how} from {first['model_cost_ms']:.2f} ms ({_work(first)})"
            else:
                text += (
                    f"; it stayed at least {part['vs_ours'].min():.2f}x our service's latency "
                    "at every measured cost"
                )
        out.append(text + ".")
    return out
