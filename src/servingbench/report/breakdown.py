"""Where the time goes, and when the choice of server matters.

Breakdown, per closed-loop point (means, medians over repeats):
  client latency = server time + outside (network, client, and queueing in front of the server)
  server time    = model + queue + framework (protocol, validation, the event loop, encoding)
Server time, model and queue come from the server's own metrics (`sweep.server_timing`); a
backend that counts no model stage is given the model's in-process cost instead (marked). A
backend that reports no request duration (KServe counts only its model call) cannot say how the
rest of the client latency splits into framework and outside: that rest is "not attributed".
Every bar stacks to its series' client latency, so a server that says less never looks faster.

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

from servingbench.report.figure import (
    PALETTE,
    Axis,
    FigureSpec,
    RefLine,
    Segment,
    Trace,
    floats,
)
from servingbench.report.load import RunData
from servingbench.runs.summary import level_text

__all__ = [
    "MATTERS_BELOW",
    "SEGMENTS",
    "WITHIN",
    "bar_segments",
    "breakdown_figure",
    "breakdown_table",
    "crossovers",
    "decision_figure",
    "decision_table",
    "has_breakdown",
    "varies_cost",
]

MATTERS_BELOW = 0.10
"""Overhead share under which the server no longer matters much."""
WITHIN = 0.10
"""How close (relative latency) a server must come to ours to count as "as fast"."""

SEGMENTS: dict[str, tuple[str, str, bool]] = {
    "model_metric": ("model (the server's own metric)", "#2ca02c", False),
    "model_in_process": ("model (its in-process cost: the server reports none)", "#98df8a", True),
    "queue": ("queue (batch or thread)", "#9467bd", False),
    "framework": ("framework (server minus model and queue)", "#ff7f0e", False),
    "outside": ("outside the server (network, client, queue before it)", "#7f7f7f", False),
    "not_attributed": (
        "not attributed (the server reports no request duration)",
        "#d9d9d9",
        True,
    ),
}
"""The bars' parts, from the axis up: (legend name, colour, hatched)."""
CLIENT = "client latency (mean, 95 % interval)"


def _closed(data: RunData) -> pd.DataFrame:
    agg = data.aggregate
    if agg.empty:
        return agg
    return agg[(agg["load"] == "closed") & (agg["repeats"] > 0)].reset_index(drop=True)


def breakdown_table(data: RunData) -> pd.DataFrame:
    """One row per closed-loop point: client latency and the parts the server reports.

    `not_attributed_ms` (where the server reports no request duration) is the client latency
    less the model and queue time the server did report.
    """
    closed = _closed(data)
    if closed.empty:
        return pd.DataFrame()
    model = closed["model_ms"].where(closed["model_ms"].notna(), closed["model_cost_ms"])
    queue = closed["queue_ms"].fillna(0.0)
    return pd.DataFrame(
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
            "not_attributed_ms": (closed["avg_ms"] - model.fillna(0.0) - queue).where(
                closed["server_ms"].isna()
            ),
            "header_ms": closed["header_ms"],
        }
    )


def has_breakdown(table: pd.DataFrame) -> bool:
    """Whether any server reported a stage of its own: else there is nothing to break down."""
    if table.empty:
        return False
    return bool(
        table["server_ms"].notna().any()
        or table["queue_ms"].notna().any()
        or (table["model_source"] == "metrics").any()
    )


def bar_segments(table: pd.DataFrame) -> pd.DataFrame:
    """The bars' parts (ms, one column per `SEGMENTS` key), each row summing to its client latency.

    The server's parts are taken from the axis up, each cut to what is left of the client
    latency (noise can make a difference of means slightly negative, or the server's parts
    slightly exceed the client's mean); the rest is "outside" where the server reports its
    request duration, else "not attributed". The table keeps the uncut figures.
    """
    left = np.maximum(np.nan_to_num(table["client_ms"].to_numpy(dtype=float)), 0.0)
    known = table["server_ms"].notna().to_numpy()
    parts: dict[str, np.ndarray] = {}

    def take(name: str, values: pd.Series, where: np.ndarray) -> None:
        nonlocal left
        wanted = np.where(where, np.maximum(np.nan_to_num(values.to_numpy(dtype=float)), 0.0), 0)
        parts[name] = np.minimum(wanted, left)
        left = left - parts[name]

    metric = (table["model_source"] == "metrics").to_numpy()
    take("model_metric", table["model_ms"], metric)
    take("model_in_process", table["model_ms"], ~metric)
    take("queue", table["queue_ms"], np.ones(len(table), dtype=bool))
    take("framework", table["framework_ms"], known)
    parts["outside"] = np.where(known, left, 0.0)
    parts["not_attributed"] = np.where(known, 0.0, left)
    return pd.DataFrame(parts, index=table.index)


def breakdown_figure(data: RunData, level: float) -> FigureSpec:
    """Stacked bars at one level, each up to its series' client latency (marked with its
    interval): model, queue, framework, outside, or what the server did not attribute."""
    table = breakdown_table(data)
    closed = _closed(data)
    chosen = (table["level"] == level).to_numpy() if not table.empty else np.zeros(0, dtype=bool)
    part, client = (table[chosen], closed[chosen]) if chosen.size else (table, closed)
    categories = tuple(f"{r.series}\n{r.model_name} x{r.rows}" for r in part.itertuples())
    values = bar_segments(part) if len(part) else pd.DataFrame(columns=list(SEGMENTS))
    segments = tuple(  # a part no bar has stays out of the legend
        Segment(name, color, floats(values[key]), hatched)
        for key, (name, color, hatched) in SEGMENTS.items()
        if (values[key] > 0).any()
    )
    marker = Trace(
        name="client latency",
        group=CLIENT,
        color="#000000",
        x=categories,
        y=floats(part["client_ms"]) if len(part) else (),
        y_low=floats(client["avg_ms_lo"]) if len(part) else (),
        y_high=floats(client["avg_ms_hi"]) if len(part) else (),
        line="none",
        marker="diamond",
    )
    unexplained = (
        '; "not attributed" is the part a server that reports no request duration leaves '
        "unexplained (its framework and everything outside it)"
        if (values["not_attributed"] > 0).any()
        else ""
    )
    users = level_text("closed", level)
    return FigureSpec(
        name=f"breakdown_{level:g}",
        title=f"Where a request's time goes at {users} (mean ms)",
        caption=f"where the time goes at {users} (means): each bar stacks to its series' client "
        f"latency (the diamond, with its 95 % interval){unexplained}",
        x=Axis(""),
        y=Axis("ms per request", low=0.0),
        traces=(marker,),
        categories=categories,
        segments=segments,
        size=(11.0, 5.5),
    )


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


def decision_figure(data: RunData) -> FigureSpec:
    """Overhead share against the model's in-process cost, one line per series."""
    table = decision_table(data)
    palette = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(data.series)}
    traces = []
    for series, group in table.groupby("series", sort=False) if not table.empty else []:
        part = group.sort_values("model_cost_ms")
        traces.append(
            Trace(
                name=str(series),
                group=str(series),
                color=palette.get(str(series), "#7f7f7f"),
                x=floats(part["model_cost_ms"]),
                y=floats(100 * part["overhead_share"]),
            )
        )
    return FigureSpec(
        name="decision",
        title="Overhead share against the model's own cost (lowest load)",
        caption="overhead share against the model's own cost: where the server stops mattering",
        x=Axis("model cost per request, in-process (ms)", "log"),
        y=Axis("overhead: share of client latency (%)", low=0.0, high=100.0),
        traces=tuple(traces),
        lines=(
            RefLine(
                "y", 100 * MATTERS_BELOW, "#7f7f7f", "dotted", "10 %: the server stops mattering"
            ),
        ),
    )


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
