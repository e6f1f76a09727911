"""A run beside a baseline run: deltas and ratios per matching point, with a noise verdict.

Points match on (scenario, server configuration, concurrency). A difference counts as real only
when it is larger than the run-to-run spread we can see: the window-to-window variation inside
each of the two points ((max - min) / mean over the measurement windows, as `runs.stats`
measures stability). Each figure is judged against the spread of the same figure: req/s
against the windows' req/s, p50 against their p50, p99 against their p99.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from servingbench.atomic import atomic_write_text
from servingbench.report.document import (
    Block,
    Bullets,
    Heading,
    Paragraph,
    fmt,
    frame_table,
    get_path,
)
from servingbench.report.load import RunData
from servingbench.report.markdown import render_markdown

__all__ = [
    "METRICS",
    "NOISE_RULE",
    "NO_WINDOW_P99",
    "compare_runs",
    "unmatched",
    "verdict",
    "write_comparison",
]

KEY = ["scenario", "server_config", "concurrency"]
# (column, spread column, +1 when higher is better / -1 when lower is better)
METRICS: tuple[tuple[str, str, int], ...] = (
    ("rps", "rps_spread", +1),
    ("p50_ms", "p50_spread", -1),
    ("p99_ms", "p99_spread", -1),
)
NO_WINDOW_P99 = "unknown (no per-window p99)"
NOISE_RULE = (
    'A change is "within noise" when |ratio - 1| is not larger than the bigger of the two '
    "points' window-to-window spreads ((max - min) / mean over their measurement windows) of "
    "the same figure: req/s against the windows' req/s, p50 against their p50, p99 against "
    'their p99. "unknown" means a point had fewer than two whole windows; '
    f'"{NO_WINDOW_P99}" that it had windows but not two with a p99.'
)


def verdict(base: float, current: float, noise: float, higher_is_better: bool) -> str:
    """ "better", "worse", "within noise", or "unknown" when noise or a value is missing."""
    if not all(map(math.isfinite, (base, current, noise))) or base <= 0:
        return "unknown"
    change = current / base - 1
    if abs(change) <= noise:
        return "within noise"
    return "better" if (change > 0) == higher_is_better else "worse"


def compare_runs(current: RunData, baseline: RunData) -> pd.DataFrame:
    """One row per point measured in both runs, with base/current/delta/ratio/noise/verdict."""
    cur = current.points[current.points["has_records"]]
    base = baseline.points[baseline.points["has_records"]]
    merged = cur.merge(base, on=KEY, suffixes=("", "_base"))
    table = pd.DataFrame({"series": merged["series"], "concurrency": merged["concurrency"]})
    # windows exist in both points (req/s spread known) yet no latency spread: say why
    windowed = merged[["rps_spread", "rps_spread_base"]].notna().all(axis=1)
    for column, spread, sign in METRICS:
        noise = merged[[spread, f"{spread}_base"]].max(axis=1, skipna=False)
        table[f"{column}_base"] = merged[f"{column}_base"]
        table[column] = merged[column]
        table[f"{column}_delta"] = merged[column] - merged[f"{column}_base"]
        table[f"{column}_ratio"] = merged[column] / merged[f"{column}_base"]
        table[f"{column}_noise"] = noise
        table[f"{column}_verdict"] = [
            NO_WINDOW_P99
            if column == "p99_ms" and has_windows and not math.isfinite(n)
            else verdict(b, c, n, sign > 0)
            for b, c, n, has_windows in zip(
                merged[f"{column}_base"], merged[column], noise, windowed, strict=True
            )
        ]
    table["error_pct_base"] = merged["error_rate_base"] * 100
    table["error_pct"] = merged["error_rate"] * 100
    table["flags_base"] = merged["flags_base"]
    table["flags"] = merged["flags"]
    return table


def unmatched(current: RunData, baseline: RunData) -> list[str]:
    """Points present in only one of the two runs (or without records in one)."""

    def keys(data: RunData) -> set[str]:
        measured = data.points[data.points["has_records"]]
        return {
            f"{s} N={c}" for s, c in zip(measured["series"], measured["concurrency"], strict=True)
        }

    cur, base = keys(current), keys(baseline)
    return [f"only in {current.run_id}: {k}" for k in sorted(cur - base)] + [
        f"only in {baseline.run_id}: {k}" for k in sorted(base - cur)
    ]


def _blocks(table: pd.DataFrame, current: RunData, baseline: RunData) -> list[Block]:
    view = pd.DataFrame({"series": table["series"], "N": table["concurrency"]})
    for column, label in (("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        view[f"{label} base"] = table[f"{column}_base"]
        view[label] = table[column]
        view[f"{label} ratio"] = table[f"{column}_ratio"]
        view[f"{label} noise ±"] = table[f"{column}_noise"]
        view[f"{label} verdict"] = table[f"{column}_verdict"]
    view["error % base → now"] = [
        f"{fmt(b)} → {fmt(c)}"
        for b, c in zip(table["error_pct_base"], table["error_pct"], strict=True)
    ]
    flagged = (table["flags"] != "") | (table["flags_base"] != "")
    pct = {
        c: (
            lambda v: (
                fmt(v * 100, 1) + " %" if isinstance(v, float) and math.isfinite(v) else fmt(v)
            )
        )
        for c in view.columns
        if c.endswith("noise ±")
    }
    ratios = {c: (lambda v: fmt(v, 3)) for c in view.columns if c.endswith("ratio")}
    missing = unmatched(current, baseline)
    models = [get_path(d.meta, "sweep", "model") for d in (current, baseline)]
    warning = (
        [Paragraph(f"Warning: the runs served different models ({models[0]} vs {models[1]}).")]
        if None not in models and models[0] != models[1]
        else []
    )
    return [
        Heading(f"{current.run_id} compared with baseline {baseline.run_id}", level=1),
        *warning,
        Paragraph(NOISE_RULE),
        Paragraph("ratio = this run / baseline. Rows where either point was flagged are marked †."),
        frame_table(view, {**pct, **ratios}, marked_rows=list(flagged)),
        Heading("Points without a match"),
        Bullets(tuple(missing)) if missing else Paragraph("none"),
    ]


def write_comparison(current: RunData, baseline: RunData) -> list[Path]:
    """comparison.csv and comparison.md in the current run's folder."""
    table = compare_runs(current, baseline)
    csv_path = current.root / "comparison.csv"
    md_path = current.root / "comparison.md"
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    blocks: Sequence[Block] = _blocks(table, current, baseline)
    atomic_write_text(md_path, render_markdown(blocks))
    return [csv_path, md_path]
