"""`point.json`: one (scenario, server configuration, concurrency) measurement of a run.

Written by the sweep after the point finishes; read by the report. Latency figures in
`summary` come from `requests.npz` via `runs.stats.summarize`, never from Locust's buckets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from servingbench.atomic import atomic_write_text

__all__ = ["FLAGS", "Flag", "PointResult", "ProcessUsage", "WindowRecord"]

Flag = Literal["client-bound", "unstable", "failed", "errors"]
FLAGS: tuple[Flag, ...] = ("client-bound", "unstable", "failed", "errors")


def series_label(scenario: str, server_config: str) -> str:
    """A series is a scenario under one server configuration: `scenario` or `scenario@config`."""
    return scenario if server_config in ("", "default") else f"{scenario}@{server_config}"


class ProcessUsage(BaseModel):
    """CPU and memory of one process tree (a server, or the load generator) during the point."""

    role: Literal["server", "generator"]
    name: str
    pids: list[int]
    cpu_percent: float = Field(description="100 = one core fully busy, over the measured window")
    cpu_seconds: float
    rss_bytes: int = Field(description="peak resident set size summed over the tree")
    cpus: list[int] | None = Field(default=None, description="cores it was pinned to")


class WindowRecord(BaseModel):
    """One `runs.stats.Window` as saved; `p99_ms` is absent from points saved before it existed."""

    start_s: float
    end_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float | None = None


class PointResult(BaseModel):
    point_id: str
    scenario: str = Field(description="loadtest scenario, e.g. mlserver-grpc")
    backend: str = Field(description="mlserver | fastapi")
    protocol: str = Field(description="rest | v2-rest | grpc")
    server_config: str = "default"
    server_name: str | None = Field(
        default=None, description="the server process (in `usage`) this point loaded"
    )
    model: str
    host: str
    concurrency: int
    rows_per_request: int
    duration_s: float = Field(description="planned measured duration (after warm-up)")
    warmup_s: float
    measured_s: float | None = Field(
        default=None,
        description="measured window the summary used: warm-up end to last answer "
        "(`runs.stats.measured_span_s`); None in points saved before it was recorded",
    )
    window_s: float | None = Field(
        default=None, description="stability window length; None in older points"
    )
    started_at: str
    finished_at: str
    status: Literal["ok", "failed"]
    failure_reason: str | None = None
    flags: list[Flag] = Field(default_factory=list)
    summary: dict[str, float] = Field(default_factory=dict)
    windows: list[WindowRecord] = Field(default_factory=list)
    usage: list[ProcessUsage] = Field(default_factory=list)
    errors_by_outcome: dict[str, int] = Field(default_factory=dict)
    locust_rps: float | None = Field(default=None, description="Locust's own figure, for reference")
    generator_processes: int = Field(default=1, description="Locust processes that made the load")
    pinning: dict[str, list[int] | None] = Field(
        default_factory=dict, description="cores per role (server, generator); None = not pinned"
    )
    generator_ceiling_rps: float | None = Field(
        default=None,
        description="calibrated generator req/s per core for this protocol (`make calibrate`)",
    )

    @property
    def series(self) -> str:
        return series_label(self.scenario, self.server_config)

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: Path) -> PointResult:
        return cls.model_validate_json(path.read_bytes())
