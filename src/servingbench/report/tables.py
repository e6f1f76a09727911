"""The report's tables: the per-point summary and the comparisons across series, as CSV files.

`summary.csv` has one row per (series, concurrency). The comparison tables put series side by
side by concurrency (req/s, p99), divide by a baseline series, and pick, per series, the best
throughput that kept p99 under a bound on an unflagged point: "which backend, at what load, at
what latency".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servingbench.atomic import atomic_write_text
from servingbench.report.load import RunData
from servingbench.report.settings import ReportSettings

__all__ = [
    "SUMMARY_COLUMNS",
    "ReportTables",
    "build_tables",
    "by_concurrency",
    "default_baseline",
    "max_throughput_under_bound",
    "ratio_to",
    "summary_table",
    "write_tables",
]

# summary.csv column -> RunData.points column (or a computed one, see summary_table)
SUMMARY_COLUMNS: dict[str, str] = {
    "series": "series",
    "scenario": "scenario",
    "server_config": "server_config",
    "concurrency": "concurrency",
    "status": "status",
    "requests": "requests",
    "errors": "errors",
    "req_s": "rps",
    "error_rate_pct": "error_rate",
    "avg_ms": "avg_ms",
    "p25_ms": "p25_ms",
    "p50_ms": "p50_ms",
    "p90_ms": "p90_ms",
    "p95_ms": "p95_ms",
    "p99_ms": "p99_ms",
    "max_ms": "max_ms",
    "generator_cpu_pct": "generator_cpu_pct",
    "server_cpu_pct": "server_cpu_pct",
    "server_rss_mb": "server_rss_mb",
    "preds_per_server_cpu_s": "preds_per_server_cpu_s",
    "flags": "flags",
    "point_id": "point_id",
}


def summary_table(data: RunData) -> pd.DataFrame:
    """One row per point with the figures users compare; error rate in percent."""
    table = data.points[list(SUMMARY_COLUMNS.values())].copy()
    table.columns = pd.Index(list(SUMMARY_COLUMNS))
    table["error_rate_pct"] = table["error_rate_pct"] * 100
    return table


def by_concurrency(data: RunData, column: str) -> pd.DataFrame:
    """`column` with concurrency as rows and series as columns (series in display order)."""
    table = data.points.pivot(index="concurrency", columns="series", values=column)
    return table.reindex(columns=data.series)


def default_baseline(data: RunData) -> str | None:
    """The MLServer series with the highest peak req/s on unflagged points (else on any point)."""
    points = data.points[data.points["has_records"]]
    mlserver = points[points["backend"] == "mlserver"]
    for candidates in (mlserver[~mlserver["flagged"]], mlserver, points):
        if not candidates.empty and candidates["rps"].notna().any():
            return str(candidates.sort_values("rps", ascending=False)["series"].iloc[0])
    return None


def ratio_to(table: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every series divided by `baseline`, concurrency by concurrency."""
    return table.div(table[baseline], axis=0)


FLAG_MARK = "†"
"""Marks a value that comes from a flagged point, in every table."""

TOLERATED_FLAGS = frozenset({"unstable", "client-bound"})
"""Flags under which a point's throughput still means something (jittery, or a lower bound)."""


def _best_within(points: pd.DataFrame, bound_ms: float) -> pd.Series | None:
    within = points[points["p99_ms"] <= bound_ms]
    if within.empty:
        return None
    return within.sort_values("rps", ascending=False).iloc[0]


def _tolerable(flags: str) -> bool:
    return bool(flags) and set(flags.split(",")) <= TOLERATED_FLAGS


def max_throughput_under_bound(data: RunData, bound_ms: float) -> pd.DataFrame:
    """Per series, the unflagged point with the most req/s whose p99 stayed within the bound.

    `incl_flagged` adds, marked, a faster point that is only `unstable` or `client-bound`
    (error-free, not failed): on a noisy machine the strict answer is often "none", and the
    flagged figure is still informative as long as it is never mixed in silently.
    """
    rows = []
    for series in data.series:
        points = data.points[data.points["series"] == series]
        best = _best_within(points[~points["flagged"]], bound_ms)
        flagged = _best_within(
            points[points["status"].eq("ok") & points["flags"].map(_tolerable)], bound_ms
        )
        row: dict[str, Any] = {
            "series": series,
            "max_req_s": float("nan"),
            "concurrency": pd.NA,
            "p99_ms": float("nan"),
            "result": "none",
            "incl_flagged": "-",
        }
        if best is not None:
            row |= {
                "max_req_s": float(best["rps"]),
                "concurrency": int(best["concurrency"]),
                "p99_ms": float(best["p99_ms"]),
                "result": f"{best['rps']:.0f} req/s at N={int(best['concurrency'])}",
            }
        if flagged is not None and (best is None or flagged["rps"] > best["rps"]):
            row["incl_flagged"] = (
                f"{flagged['rps']:.0f} req/s at N={int(flagged['concurrency'])} "
                f"{FLAG_MARK} ({flagged['flags']}, p99 {flagged['p99_ms']:.1f} ms)"
            )
        rows.append(row)
    columns = ["series", "max_req_s", "concurrency", "p99_ms", "result", "incl_flagged"]
    table = pd.DataFrame(rows, columns=columns)
    table["concurrency"] = table["concurrency"].astype("Int64")
    return table


@dataclass(frozen=True)
class ReportTables:
    """Everything the documents and the command print, computed once."""

    summary: pd.DataFrame
    rps: pd.DataFrame
    p99: pd.DataFrame
    flagged: pd.DataFrame
    baseline: str | None
    rps_ratio: pd.DataFrame | None
    p99_ratio: pd.DataFrame | None
    bound_ms: float
    under_bound: pd.DataFrame


def build_tables(data: RunData, settings: ReportSettings) -> ReportTables:
    """All tables for one run; an unknown baseline series is a ValueError listing the known ones."""
    baseline = settings.baseline_series or default_baseline(data)
    if baseline is not None and baseline not in data.series:
        raise ValueError(
            f"unknown baseline series {baseline!r}; this run has: {', '.join(data.series)}"
        )
    rps = by_concurrency(data, "rps")
    p99 = by_concurrency(data, "p99_ms")
    flagged = by_concurrency(data, "flagged").fillna(False).astype(bool)
    return ReportTables(
        summary=summary_table(data),
        rps=rps,
        p99=p99,
        flagged=flagged,
        baseline=baseline,
        rps_ratio=ratio_to(rps, baseline) if baseline else None,
        p99_ratio=ratio_to(p99, baseline) if baseline else None,
        bound_ms=settings.p99_bound_ms,
        under_bound=max_throughput_under_bound(data, settings.p99_bound_ms),
    )


def _write_csv(path: Path, table: pd.DataFrame, index: bool) -> Path:
    atomic_write_text(path, table.to_csv(index=index, float_format="%.6g"))
    return path


def write_tables(tables: ReportTables, root: Path) -> list[Path]:
    """summary.csv and the comparison CSVs, each written atomically."""
    written = [
        _write_csv(root / "summary.csv", tables.summary, index=False),
        _write_csv(root / "req_s_by_concurrency.csv", tables.rps, index=True),
        _write_csv(root / "p99_ms_by_concurrency.csv", tables.p99, index=True),
        _write_csv(root / "max_req_s_under_p99_bound.csv", tables.under_bound, index=False),
    ]
    if tables.rps_ratio is not None and tables.p99_ratio is not None:
        ratios = pd.concat({"req_s_ratio": tables.rps_ratio, "p99_ratio": tables.p99_ratio}, axis=1)
        written.append(_write_csv(root / "ratio_to_baseline.csv", ratios, index=True))
    return written
