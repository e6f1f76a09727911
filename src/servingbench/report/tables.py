"""The report's tables: every point, each point across its repeats, series side by side, ratios.

`points.csv` has one row per measured point (each repeat); `summary.csv` one row per point
across repeats, with the geometric mean and 95 % interval of req/s, p50 and p99
(`report.intervals`).
The comparison tables put series side by side by load level and divide each by a baseline
series, pairing repeats measured in the same pass; `capacity` picks, per series, the most
req/s sustained with p99 under a bound, and says what would give an answer when none did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servingbench.atomic import atomic_write_text
from servingbench.report.intervals import Ratio, paired_ratio, verdict
from servingbench.report.load import RunData
from servingbench.report.settings import ReportSettings

__all__ = [
    "FLAG_MARK",
    "SUMMARY_COLUMNS",
    "ReportTables",
    "build_tables",
    "by_level",
    "capacity",
    "default_baseline",
    "describe_series",
    "ratio_table",
    "series_title",
    "write_tables",
]

FLAG_MARK = "†"
"""Marks a value that comes from a flagged point, in every table."""

DISQUALIFYING = frozenset({"failed", "errors", "incomplete"})
"""Flags under which a point does not count as having sustained its load."""

SUMMARY_COLUMNS = [
    "series", "model", "rows_per_request", "load", "level", "repeats",
    "rps", "rps_lo", "rps_hi", "p50_ms", "p50_ms_lo", "p50_ms_hi",
    "p99_ms", "p99_ms_lo", "p99_ms_hi", "avg_ms", "p999_ms", "error_rate",
    "effective_concurrency", "server_cpu_pct", "server_pss_mb", "generator_cpu_pct",
    "instrument_added_ms", "flags",
]  # fmt: skip


def describe_series(title: str, server_config: str, wire: str) -> str:
    """A series in words: `MLServer v2-grpc`, `our FastAPI service predict-json (batching)`."""
    suffix = "" if server_config in ("", "default") else f" ({server_config})"
    return f"{title} {wire}{suffix}"


def by_level(data: RunData, column: str) -> pd.DataFrame:
    """`column` across repeats, user counts as rows and lines as columns."""
    agg = data.closed
    if agg.empty:
        return pd.DataFrame()
    table = agg.pivot_table(index="level", columns="line", values=column, aggfunc="first")
    return table.reindex(columns=[line for line in data.lines if line in table.columns])


def _values(data: RunData, line: str, level: float, column: str) -> dict[int, float]:
    """repeat -> value of one point's measured repeats (closed loop)."""
    rows = data.points[
        (data.points["line"] == line)
        & (data.points["level"] == level)
        & (data.points["load"] == "closed")
        & data.points["has_records"]
    ]
    return {int(r): float(v) for r, v in zip(rows["repeat"], rows[column], strict=True)}


def paired(data: RunData, line: str, baseline: str, level: float, column: str) -> Ratio:
    """Line `line` / line `baseline` at one level, repeat k against repeat k (same pass).

    Lines carry their model and batch size, so only like work is ever divided."""
    a, b = _values(data, line, level, column), _values(data, baseline, level, column)
    common = sorted(set(a) & set(b))
    return paired_ratio([a[k] for k in common], [b[k] for k in common])


def ratio_table(
    data: RunData, baseline: str, column: str, higher_is_better: bool, min_effect: float
) -> pd.DataFrame:
    """Per line and level: ratio to the `baseline` series on the same model and batch size,
    with its interval and verdict."""
    rows = []
    closed = data.closed
    for line in data.lines:
        part = closed[closed["line"] == line]
        if part.empty or part["series"].iloc[0] == baseline:
            continue
        first = part.iloc[0]
        base = data.line_of(baseline, first["model"], int(first["rows_per_request"]))
        if base is None:
            continue
        for level in sorted(set(part["level"])):
            r = paired(data, line, base, level, column)
            rows.append(
                {
                    "line": line,
                    "baseline": base,
                    "level": level,
                    "ratio": r.ratio,
                    "low": r.low,
                    "high": r.high,
                    "pairs": r.n,
                    "verdict": verdict(r, higher_is_better, min_effect),
                }
            )
    columns = ["line", "baseline", "level", "ratio", "low", "high", "pairs", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def default_baseline(data: RunData) -> str | None:
    """The series with the highest peak req/s among the stock servers (backends that
    are not `ours`), else among all: what a user compares their own service against."""
    agg = data.closed[(data.closed["repeats"] > 0) & data.closed["rps"].notna()]
    stock = agg[~agg["backend"].isin(data.ours)]
    for candidates in (stock, agg):
        if not candidates.empty:
            return str(candidates.sort_values("rps", ascending=False)["series"].iloc[0])
    return None


def _disqualified(flags: str) -> bool:
    names = {part.split("×")[0] for part in flags.split(",") if part}
    return bool(names & DISQUALIFYING)


def capacity(data: RunData, bound_ms: float) -> pd.DataFrame:
    """Per line: the most req/s at a level whose p99 stayed within `bound_ms`.

    A level counts when it has no failed or erroring repeat and its p99 interval lies within
    the bound (its value, with one repeat). The answer carries its interval and the level;
    when no level counts, `result` says what would give an answer.
    """
    rows = []
    for line in data.lines:
        agg = data.closed[(data.closed["line"] == line) & (data.closed["repeats"] > 0)]
        agg = agg.sort_values("level")
        upper = agg["p99_ms_hi"].where(agg["p99_ms_hi"].notna(), agg["p99_ms"])
        ok = agg[(upper <= bound_ms) & ~agg["flags"].map(_disqualified).astype(bool)]
        row: dict[str, Any] = {"line": line, "max_rps": math.nan, "rps_lo": math.nan,
                               "rps_hi": math.nan, "level": math.nan, "p99_ms": math.nan,
                               "flags": "", "result": ""}  # fmt: skip
        if not ok.empty:
            best = ok.sort_values("rps", ascending=False).iloc[0]
            row |= {
                "max_rps": best["rps"], "rps_lo": best["rps_lo"], "rps_hi": best["rps_hi"],
                "level": best["level"], "p99_ms": best["p99_ms"], "flags": best["flags"],
            }  # fmt: skip
            row["result"] = f"{best['rps']:.0f} req/s at {_level(best)}"
        elif agg.empty:
            row["result"] = "no measured point"
        else:
            lowest = agg.iloc[0]
            if _disqualified(lowest["flags"]):
                row["result"] = (
                    f"none: every level had failed or erroring repeats ({lowest['flags']} at "
                    f"{_level(lowest)}); fix the errors first"
                )
            else:
                row["result"] = (
                    f"none: p99 at the lowest level ({_level(lowest)}) was "
                    f"{lowest['p99_ms']:.1f} ms (up to {upper.iloc[0]:.1f}); a bound above "
                    f"that (--p99-bound-ms) or a lighter load would give an answer"
                )
        rows.append(row)
    return pd.DataFrame(rows)


def _level(row: pd.Series) -> str:
    if row.get("load") == "open":
        return f"{row['level']:.0f} req/s offered"
    users = int(row["level"])
    return f"{users} user{'s' if users != 1 else ''}"


@dataclass(frozen=True)
class ReportTables:
    """Everything the documents and the command print, computed once."""

    summary: pd.DataFrame
    points: pd.DataFrame
    rps: pd.DataFrame
    p99: pd.DataFrame
    flagged: pd.DataFrame
    baseline: str | None
    rps_ratio: pd.DataFrame | None
    p99_ratio: pd.DataFrame | None
    bound_ms: float
    capacity: pd.DataFrame
    min_effect: float


def build_tables(data: RunData, settings: ReportSettings) -> ReportTables:
    """All tables for one run; an unknown baseline series is a ValueError listing the known ones."""
    baseline = settings.baseline_series or default_baseline(data)
    if baseline is not None and baseline not in data.series:
        raise ValueError(
            f"unknown baseline series {baseline!r}; this run has: {', '.join(data.series)}"
        )
    summary = data.aggregate.reindex(columns=SUMMARY_COLUMNS)
    flagged = by_level(data, "flagged").fillna(False).astype(bool)
    return ReportTables(
        summary=summary,
        points=data.points.drop(columns=["flagged"], errors="ignore"),
        rps=by_level(data, "rps"),
        p99=by_level(data, "p99_ms"),
        flagged=flagged,
        baseline=baseline,
        rps_ratio=ratio_table(data, baseline, "rps", True, settings.min_effect)
        if baseline
        else None,
        p99_ratio=ratio_table(data, baseline, "p99_ms", False, settings.min_effect)
        if baseline
        else None,
        bound_ms=settings.p99_bound_ms,
        capacity=capacity(data, settings.p99_bound_ms),
        min_effect=settings.min_effect,
    )


def _write_csv(path: Path, table: pd.DataFrame, index: bool) -> Path:
    atomic_write_text(path, table.to_csv(index=index, float_format="%.6g"))
    return path


def write_tables(tables: ReportTables, root: Path) -> list[Path]:
    """summary.csv, points.csv and the comparison CSVs, each written atomically."""
    written = [
        _write_csv(root / "summary.csv", tables.summary, index=False),
        _write_csv(root / "points.csv", tables.points, index=False),
        _write_csv(root / "req_s_by_level.csv", tables.rps, index=True),
        _write_csv(root / "p99_ms_by_level.csv", tables.p99, index=True),
        _write_csv(root / "capacity_under_p99_bound.csv", tables.capacity, index=False),
    ]
    if tables.rps_ratio is not None and tables.p99_ratio is not None:
        ratios = pd.concat(
            {"req_s": tables.rps_ratio, "p99_ms": tables.p99_ratio}, names=["figure", "row"]
        ).reset_index(level=0)
        written.append(_write_csv(root / "ratio_to_baseline.csv", ratios, index=False))
    return written


def series_title(data: RunData, line: str, with_work: bool = True) -> str:
    """`describe_series` for a line of this run; its model and batch size added when the run
    has several (unless the sentence names them already: `with_work=False`)."""
    row = data.aggregate[data.aggregate["line"] == line].iloc[0]
    title = describe_series(data.title(row["backend"]), row["server_config"], row["wire"])
    if with_work and line != row["series"]:
        title += f" on {row['model']}, {int(row['rows_per_request'])} row(s) per request"
    return title
