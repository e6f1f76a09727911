"""`summary.json`: a run's findings for machines (dashboards, CI), one file per run folder.

Written by `servingbench bench` at the end of the sweep and rewritten by `servingbench report`,
both through `report.summary.run_summary`, so it always holds the figures the report shows:
each series at each level with its req/s and latency and their 95 % intervals, the ratios to
the baseline series, the capacity under the report's p99 bound, the verdict in words, the
flags of every point, the sweep's settings, and the outcome of the run's gates (`--fail-if`,
`--fail-on-flags`). A figure that could not be measured is `null` (not NaN), so any JSON reader
can load the file.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from servingbench.runs.point import LoadMode
from servingbench.runs.schema import Record, Versioned

__all__ = [
    "SUMMARY_FILE",
    "Capacity",
    "Figure",
    "GateFailure",
    "GateOutcome",
    "LevelFigures",
    "RatioFigure",
    "RunSummary",
    "level_text",
]

SUMMARY_FILE = "summary.json"


class Figure(Record):
    """A figure with its 95 % interval (`low`/`high` null: one sample, no interval)."""

    value: float | None
    low: float | None = None
    high: float | None = None


class LevelFigures(Record):
    """One series (on one model and batch size) at one level, across its repeats or blocks."""

    series: str
    line: str
    model: str
    rows_per_request: int
    load: LoadMode
    level: float
    """Users (closed loop) or the offered arrival rate in req/s (open loop)."""
    samples: int
    """Repeats (or interleaved blocks) measured; `planned` minus the ones that failed."""
    planned: int
    rps: Figure
    p50_ms: Figure
    p99_ms: Figure
    avg_ms: Figure
    p90_ms: float | None
    p95_ms: float | None
    p999_ms: float | None
    error_rate: float | None
    flags: dict[str, int] = Field(default_factory=dict)
    """Flag -> how many of the level's points raised it."""
    points: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Point id -> its flags with their reasons (empty for an unflagged point)."""


class RatioFigure(Record):
    """A series divided by the baseline series at one level, repeat by repeat (paired)."""

    figure: str
    line: str
    baseline: str
    level: float
    ratio: Figure
    pairs: int
    verdict: str


class Capacity(Record):
    """Closed loop: the most req/s a series sustained with its p99 within the report's bound."""

    line: str
    bound_ms: float
    rps: Figure
    level: float | None
    result: str


class GateFailure(Record):
    gate: str
    """`--fail-if` and its objective, or `--fail-on-flags` and the flag."""
    line: str
    load: LoadMode
    level: float
    why: str
    """The figure that broke the gate, or the flag's reason."""
    point_id: str | None = None


class GateOutcome(Record):
    fail_if: str | None = None
    fail_on_flags: list[str] = Field(default_factory=list)
    passed: bool = True
    failures: list[GateFailure] = Field(default_factory=list)

    def lines(self) -> list[str]:
        """Each failure in words: the gate, where, and with what figure."""
        return [
            f"gate {f.gate} failed: {f.line} at {level_text(f.load, f.level)}: {f.why}"
            + (f" ({f.point_id})" if f.point_id else "")
            for f in self.failures
        ]


def level_text(load: LoadMode, level: float) -> str:
    if load == "open":
        return f"{level:g} req/s offered"
    return f"{int(level)} user{'s' if int(level) != 1 else ''}"


class RunSummary(Versioned):
    run_id: str
    status: str
    written_by: str
    """`bench` or `report`: which command wrote this copy."""
    baseline_series: str | None
    verdict: list[str]
    levels: list[LevelFigures]
    ratios: list[RatioFigure]
    capacity: list[Capacity]
    gates: GateOutcome
    settings: dict[str, Any]
    """The sweep's settings as meta.json recorded them."""
    report_settings: dict[str, Any]
