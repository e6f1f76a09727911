"""A run beside a baseline run: per matching point, ratios with intervals and a verdict.

Points match on every parameter that changes the work: scenario (hence backend and wire
format), server configuration, model, rows per request, load mode and level. Their repeats are
independent between runs, so each ratio is Welch's interval on the logs (`report.intervals`).
A difference is real only when the interval excludes 1 and the change is at least the minimum
effect; otherwise "no significant difference". What differs between the runs without changing
the work (durations, windows, pinning, generator processes, library versions) is listed as a
warning, not used to match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from servingbench.atomic import atomic_write_text
from servingbench.report.document import Block, Bullets, Heading, Paragraph, frame_table
from servingbench.report.intervals import MIN_EFFECT, unpaired_ratio, verdict
from servingbench.report.load import RunData
from servingbench.report.markdown import render_markdown

__all__ = [
    "KEY",
    "METRICS",
    "compare_runs",
    "regressions",
    "setting_warnings",
    "unmatched",
    "write_comparison",
]

KEY = ["scenario", "server_config", "model", "rows_per_request", "load", "level"]
METRICS: tuple[tuple[str, bool], ...] = (("rps", True), ("p50_ms", False), ("p99_ms", False))
"""(figure, higher is better)"""

_VERSIONS = ("locust", "geventhttpclient", "grpcio", "numpy", "scikit-learn", "xgboost")


def _repeats(data: RunData) -> pd.DataFrame:
    return data.points[data.points["has_records"]]


def compare_runs(
    current: RunData, baseline: RunData, min_effect: float = MIN_EFFECT
) -> pd.DataFrame:
    """One row per point measured in both runs: each figure's medians, ratio, interval, verdict."""
    cur, base = _repeats(current), _repeats(baseline)
    rows = []
    for key, group in cur.groupby(KEY, sort=False):
        mask = (base[KEY] == pd.Series(key, index=KEY)).all(axis=1)
        other = base[mask]
        if other.empty:
            continue
        row: dict[str, Any] = dict(zip(KEY, key, strict=True))
        row["series"] = group["series"].iloc[0]
        row["repeats"] = len(group)
        row["repeats_base"] = len(other)
        for column, higher_is_better in METRICS:
            r = unpaired_ratio(group[column].tolist(), other[column].tolist())
            row[f"{column}_base"] = float(other[column].median())
            row[column] = float(group[column].median())
            row[f"{column}_ratio"] = r.ratio
            row[f"{column}_low"] = r.low
            row[f"{column}_high"] = r.high
            row[f"{column}_verdict"] = verdict(r, higher_is_better, min_effect)
        row["flags"] = ",".join(sorted({f for t in group["flags"] for f in t.split(",") if f}))
        row["flags_base"] = ",".join(sorted({f for t in other["flags"] for f in t.split(",") if f}))
        rows.append(row)
    return pd.DataFrame(rows)


def regressions(table: pd.DataFrame, threshold: float) -> list[str]:
    """Points significantly worse by at least `threshold` (a fraction) on any figure."""
    found = []
    for _, row in table.iterrows():
        for column, higher_is_better in METRICS:
            ratio = row[f"{column}_ratio"]
            if row[f"{column}_verdict"] != "worse" or not math.isfinite(ratio):
                continue
            change = (1 - ratio) if higher_is_better else (ratio - 1)
            if change >= threshold:
                found.append(
                    f"{row['series']} {row['model']} rows={row['rows_per_request']} "
                    f"at {row['level']:g}: {column} {ratio:.3f}x "
                    f"({row[f'{column}_low']:.3f} to {row[f'{column}_high']:.3f})"
                )
    return found


def unmatched(current: RunData, baseline: RunData) -> list[str]:
    """Points measured in only one of the two runs."""

    def keys(data: RunData) -> set[str]:
        return {
            f"{r.series} {r.model} rows={r.rows_per_request} {r.load} {r.level:g}"
            for r in _repeats(data).itertuples()
        }

    cur, base = keys(current), keys(baseline)
    return [f"only in {current.run_id}: {k}" for k in sorted(cur - base)] + [
        f"only in {baseline.run_id}: {k}" for k in sorted(base - cur)
    ]


def setting_warnings(current: RunData, baseline: RunData) -> list[str]:
    """What differs between the runs without changing the work: worth knowing, not matched on."""
    out = []
    a, b = current.meta, baseline.meta
    mine, theirs = a.sweep.measuring(), b.sweep.measuring()
    for name, value in mine.items():
        if value != theirs[name]:
            out.append(f"{name}: {theirs[name]} (baseline) vs {value}")
    if a.pinning.model_dump() != b.pinning.model_dump():
        out.append(f"pinning: {b.pinning.model_dump()} vs {a.pinning.model_dump()}")
    for name in _VERSIONS:
        va, vb = a.software.packages.get(name), b.software.packages.get(name)
        if va != vb:
            out.append(f"harness {name}: {vb} vs {va}")
    for env in sorted(set(a.environments) | set(b.environments)):
        ea, eb = a.environments.get(env, {}), b.environments.get(env, {})
        diff = sorted(k for k in set(ea) | set(eb) if ea.get(k) != eb.get(k))
        if diff:
            out.append(
                f"{env} environment: " + ", ".join(f"{k} {eb.get(k)} vs {ea.get(k)}" for k in diff)
            )
    if a.hardware.cpu_model != b.hardware.cpu_model:
        out.append(f"CPU: {b.hardware.cpu_model} vs {a.hardware.cpu_model}")
    return out


def _cell(row: pd.Series, column: str) -> str:
    ratio, low, high = row[f"{column}_ratio"], row[f"{column}_low"], row[f"{column}_high"]
    if not math.isfinite(ratio):
        return "n/a"
    interval = f" ({low:.3f} to {high:.3f})" if math.isfinite(low) else ""
    return f"{ratio:.3f}x{interval}: {row[f'{column}_verdict']}"


def _blocks(
    table: pd.DataFrame, current: RunData, baseline: RunData, min_effect: float
) -> list[Block]:
    view = pd.DataFrame(
        {
            "series": table["series"],
            "model": table["model"],
            "rows": table["rows_per_request"],
            "level": table["level"].map(lambda v: f"{v:g}"),
            "repeats": [
                f"{a} vs {b}"
                for a, b in zip(table["repeats"], table["repeats_base"], strict=True)
            ],
            **{label: [_cell(r, column) for _, r in table.iterrows()]
               for column, label in (("rps", "req/s"), ("p50_ms", "p50"), ("p99_ms", "p99"))},
        }
    ) if not table.empty else pd.DataFrame()  # fmt: skip
    flagged = list((table["flags"] != "") | (table["flags_base"] != "")) if not table.empty else []
    warnings = setting_warnings(current, baseline)
    missing = unmatched(current, baseline)
    return [
        Heading(f"{current.run_id} compared with baseline {baseline.run_id}", level=1),
        Paragraph(
            "ratio = this run / baseline, with Welch's 95 % interval across the repeats of each. "
            f"better/worse only when the interval excludes 1 and the change is at least "
            f"{min_effect:.0%}; otherwise no significant difference. Rows where a repeat was "
            "flagged in either run are marked †."
        ),
        Heading("Settings that differ (not matched on)"),
        Bullets(tuple(warnings)) if warnings else Paragraph("none"),
        frame_table(view, marked_rows=flagged)
        if not view.empty
        else Paragraph("no point in common"),
        Heading("Points without a match"),
        Bullets(tuple(missing)) if missing else Paragraph("none"),
    ]


def write_comparison(
    current: RunData, baseline: RunData, min_effect: float = MIN_EFFECT
) -> list[Path]:
    """comparison.csv and comparison.md in the current run's folder."""
    table = compare_runs(current, baseline, min_effect)
    csv_path = current.root / "comparison.csv"
    md_path = current.root / "comparison.md"
    atomic_write_text(csv_path, table.to_csv(index=False, float_format="%.6g"))
    blocks: Sequence[Block] = _blocks(table, current, baseline, min_effect)
    atomic_write_text(md_path, render_markdown(blocks))
    return [csv_path, md_path]
