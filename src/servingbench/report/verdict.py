"""The report's opening: what the run found, in plain words, each number with its interval.

Sentences are built from the same tables as the rest of the report: paired ratios between the
fastest series and the best of each other backend at the highest load every series reached,
latency at one user beside what the instrument itself adds there, the capacity headline, and
how many points settled or were flagged.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from servingbench.report import breakdown, openloop
from servingbench.report.intervals import Estimate, verdict
from servingbench.report.load import RunData
from servingbench.report.tables import ReportTables, paired, series_title

__all__ = ["verdict_sentences"]


def _estimate(row: pd.Series, column: str) -> Estimate:
    return Estimate(row[column], row[f"{column}_lo"], row[f"{column}_hi"], int(row["repeats"]))


def _headline_work(agg: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The points of one model and rows per request (the fewest rows, the first model), and
    how to name them when the run has several: the verdict compares like with like, and the
    breakdown and decision chart cover the others."""
    combos = agg[["model", "rows_per_request"]].drop_duplicates()
    if len(combos) <= 1:
        return agg, ""
    rows = int(combos["rows_per_request"].min())
    model = str(combos[combos["rows_per_request"] == rows]["model"].iloc[0])
    chosen = agg[(agg["model"] == model) & (agg["rows_per_request"] == rows)]
    return chosen, f" ({model}, {rows} row{'s' if rows != 1 else ''} per request)"


def _users(level: float) -> str:
    return f"{int(level)} user{'s' if int(level) != 1 else ''}"


def _common_top_level(agg: pd.DataFrame) -> float | None:
    closed = agg[(agg["load"] == "closed") & (agg["repeats"] > 0)]
    if closed.empty:
        return None
    levels = [set(g["level"]) for _, g in closed.groupby("line")]
    common = set.intersection(*levels)
    return max(common) if common else None


def _throughput(data: RunData, tables: ReportTables) -> list[str]:
    agg, work = _headline_work(data.closed)
    level = _common_top_level(agg)
    if level is None:
        return []
    at = agg[(agg["level"] == level) & (agg["load"] == "closed") & (agg["repeats"] > 0)]
    best = at.sort_values("rps", ascending=False).iloc[0]
    fastest = series_title(data, best["line"], False)
    out = [
        f"At {_users(level)}{work} the fastest series was {fastest}: "
        f"{_estimate(best, 'rps').text(0)} req/s, p99 {_estimate(best, 'p99_ms').text(2)} ms."
    ]
    for backend, group in at.groupby("backend", sort=False):
        if backend == best["backend"]:
            continue
        other = group.sort_values("rps", ascending=False).iloc[0]
        rps = paired(data, best["line"], other["line"], level, "rps")
        p99 = paired(data, best["line"], other["line"], level, "p99_ms")
        them = series_title(data, other["line"], False)
        if verdict(rps, True, tables.min_effect) in ("better", "worse"):
            out.append(
                f"It served {rps.text()} the req/s of {them}, the best of its backend, at "
                f"{p99.text()} its p99."
            )
        elif rps.has_interval:
            out.append(f"Against {them}: no significant difference in req/s ({rps.text()}).")
        else:
            out.append(f"Against {them}: {rps.text()} the req/s (one repeat: no interval).")
    return out


def _one_user(data: RunData) -> list[str]:
    agg, work = _headline_work(data.closed)
    at = agg[(agg["level"] == 1) & (agg["load"] == "closed") & (agg["repeats"] > 0)]
    if at.empty:
        return []
    ordered = at.sort_values("p50_ms")
    parts = [
        f"{series_title(data, r['line'], False)} {_estimate(r, 'p50_ms').text(3)} ms"
        for _, r in ordered.iterrows()
    ]
    text = f"At 1 user{work} the median latency was: " + "; ".join(parts) + "."
    added = ordered["instrument_added_ms"].dropna()
    if not added.empty:
        spread = (
            f"{added.min():.3f}"
            if round(added.min(), 3) == round(added.max(), 3)
            else f"{added.min():.3f} to {added.max():.3f}"
        )
        text += (
            f" Locust itself adds {spread} ms at that load (calibration), included in these "
            "figures."
        )
    return [text]


def _capacity(tables: ReportTables, data: RunData) -> list[str]:
    if tables.capacity.empty:
        return []
    parts = []
    for _, row in tables.capacity.iterrows():
        title = series_title(data, row["line"])
        if math.isfinite(row["max_rps"]):
            est = Estimate(row["max_rps"], row["rps_lo"], row["rps_hi"], 2)
            parts.append(f"{title} {est.text(0)} ({row['result'].split(' at ')[-1]})")
        else:
            parts.append(f"{title}: {row['result']}")
    return [f"Most req/s with p99 ≤ {tables.bound_ms:g} ms: " + "; ".join(parts) + "."]


def _settled(data: RunData) -> list[str]:
    points = data.points
    if points.empty:
        return []
    measured = points[points["has_records"]]
    converged = int((measured["converged"] == True).sum())  # noqa: E712 (a nullable column)
    counts = Counter(f for text in points["flags"] for f in text.split(",") if f)
    flagged = int(points["flagged"].sum())
    text = (
        f"{len(measured)} of {len(points)} points measured; {converged} settled before the cap; "
        f"{flagged} flagged"
    )
    if counts:
        text += " (" + ", ".join(f"{f} {n}" for f, n in counts.most_common()) + ")"
    return [text + "."]


def _open_capacity(data: RunData) -> list[str]:
    slo = openloop.slo_of(data)
    if slo is None or not openloop.has_open(data):
        return []
    table = openloop.capacity_table(data, slo)
    parts = [f"{series_title(data, str(r.line))}: {r.result}" for r in table.itertuples()]
    return [f"Highest arrival rate meeting {slo.text} (open loop): " + "; ".join(parts) + "."]


def verdict_sentences(data: RunData, tables: ReportTables) -> list[str]:
    """The opening paragraph of report.md/.html, sentence by sentence."""
    closed = not data.closed.empty
    return [
        *_open_capacity(data),
        *(_throughput(data, tables) if closed else []),
        *(_one_user(data) if closed else []),
        *(_capacity(tables, data) if closed else []),
        *breakdown.crossovers(data),
        *_settled(data),
    ]
