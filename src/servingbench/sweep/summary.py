"""The end-of-sweep table (scenario x concurrency) and the one-line progress per point.

Figures are the point's summary, computed by `runs.stats.summarize` from its raw records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from servingbench.console import format_table
from servingbench.runs.point import PointResult

__all__ = ["HEADERS", "progress_line", "summary_table"]

HEADERS = ("series", "users", "req/s", "p50 ms", "p99 ms", "errors %", "flags")


def _num(value: float | None, digits: int) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _row(point: PointResult) -> list[str]:
    s = point.summary
    error_rate = s.get("error_rate")
    return [
        point.series,
        str(point.concurrency),
        _num(s.get("rps"), 1),
        _num(s.get("p50_ms"), 2),
        _num(s.get("p99_ms"), 2),
        _num(100.0 * error_rate if error_rate is not None else None, 2),
        ",".join(point.flags) or "-",
    ]


def progress_line(point: PointResult) -> str:
    scenario, users, rps, p50, p99, errors, flags = _row(point)
    line = (
        f"{scenario:<28} users {users:>3}  {rps:>8} req/s  p50 {p50:>7} ms  p99 {p99:>7} ms  "
        f"errors {errors:>5} %  flags {flags}"
    )
    if point.failure_reason:
        line += f"\n    {point.failure_reason.splitlines()[0]}"
    return line


def summary_table(points: Sequence[PointResult]) -> str:
    """Rows sorted by scenario then concurrency."""
    ordered = sorted(points, key=lambda p: (p.scenario, p.server_config, p.concurrency))
    return format_table(HEADERS, [_row(p) for p in ordered])
