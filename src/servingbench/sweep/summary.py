"""The one-line progress per point and the end-of-sweep table.

Figures are the point's summary, computed by `runs.stats.summarize` from its raw records; the
table gives the median over repeats (the report adds the intervals).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

from servingbench.console import format_table
from servingbench.runs.point import PointResult

__all__ = ["HEADERS", "progress_line", "summary_table"]

HEADERS = ("series", "model", "rows", "level", "repeats", "req/s", "p50 ms", "p99 ms", "errors %",
           "flags")  # fmt: skip


def _num(value: float | None, digits: int) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _level(point: PointResult) -> str:
    """Users (closed loop) or the offered rate (open loop): what the point was measured at."""
    key = point.key
    return f"{key.rate:.0f} req/s" if key.load == "open" else f"N={key.concurrency}"


def progress_line(point: PointResult) -> str:
    s = point.summary
    key = point.key
    parts = f"{len(point.slices)} slices" if point.slices else f"{len(point.windows)} windows"
    figures = (
        f"{_num(s.rps, 1):>8} req/s  p50 {_num(s.p50_ms, 2):>7} ms  p99 {_num(s.p99_ms, 2):>7} ms"
        f"  {parts}"
        if s
        else "no figures"
    )
    line = (
        f"{point.series:<32} {_level(point):<10} rep {key.repeat}  {figures}  "
        f"flags {','.join(point.flags) or '-'}"
    )
    if point.failure_reason:
        line += f"\n    {point.failure_reason.splitlines()[0]}"
    return line


def _median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def summary_table(points: Sequence[PointResult]) -> str:
    """One row per point across repeats: medians, and the flags any repeat raised."""
    groups: dict[tuple[object, ...], list[PointResult]] = defaultdict(list)
    for p in points:
        groups[(p.series, p.key.model, p.key.rows_per_request, p.key.load, p.key.level)].append(p)
    rows = []
    ordered = sorted(groups.items(), key=lambda item: (str(item[0][:4]), item[0][4]))
    for (series, model, rows_per, _, _), group in ordered:
        summaries = [p.summary for p in group if p.summary is not None]
        flags = sorted({f for p in group for f in p.flags})
        rows.append(
            [
                str(series),
                str(model),
                str(rows_per),
                _level(group[0]),
                f"{len(summaries)}/{len(group)}",
                _num(_median([s.rps for s in summaries]), 1),
                _num(_median([s.p50_ms for s in summaries]), 2),
                _num(_median([s.p99_ms for s in summaries]), 2),
                _num(_median([100 * s.error_rate for s in summaries]), 2),
                ",".join(flags) or "-",
            ]
        )
    return format_table(HEADERS, rows)
