"""A point's server-side timing, as recorded in `point.json` (see `sweep.server_timing`)."""

from __future__ import annotations

from pydantic import Field

from servingbench.runs.schema import Record

__all__ = ["ServerTiming", "StageFigures"]


class StageFigures(Record):
    """One stage over a point's measured interval."""

    stage: str
    source: str = Field(description="the Prometheus family it was read from")
    count: int
    mean_ms: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    resolved: bool = Field(
        default=False, description="whether the percentiles fall in buckets narrow enough to read"
    )
    note: str = ""


class ServerTiming(Record):
    """What the server said about a point: its stages, and the per-request Server-Timing."""

    stages: dict[str, StageFigures] = Field(default_factory=dict)
    header_mean_ms: float | None = Field(
        default=None, description="mean of the `Server-Timing: app` of measured requests"
    )
    header_p50_ms: float | None = None
    header_p99_ms: float | None = None
    problem: str | None = Field(default=None, description="why a stage is missing, if one is")
