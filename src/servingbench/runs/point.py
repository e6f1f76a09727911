"""`point.json`: one measurement of a run, keyed by every parameter that changes the work.

Written by the sweep after the point finishes; read by the report. Latency figures come from
`requests.npz` via `runs.stats`, never from Locust's buckets; the report recomputes them.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import ConfigDict, Field

from servingbench.runs.schema import Record, Versioned
from servingbench.runs.stats import LatencySummary, MeasurePlan, Window
from servingbench.runs.timing import ServerTiming

__all__ = [
    "FLAGS",
    "Flag",
    "GeneratorReport",
    "Interference",
    "InterleavePlan",
    "LoadMode",
    "PointKey",
    "PointResult",
    "ProcessUsage",
    "ReferenceSlice",
    "SliceResult",
    "WorkerReport",
    "known_flags",
    "line_label",
    "series_label",
]

Flag = Literal[
    "failed",
    "errors",
    "incomplete",
    "unstable",
    "client-bound",
    "generator-late",
    "dropped",
    "contended",
    "clock-unbounded",
    "worker-lost",
]
FLAGS: tuple[Flag, ...] = get_args(Flag)
"""Every flag, in the order they are listed (see `sweep.flags` for what each means)."""


def known_flags(names: list[str]) -> list[str]:
    """`names` if each is a flag, else a ValueError listing the flags there are."""
    unknown = [n for n in names if n not in FLAGS]
    if unknown:
        raise ValueError(f"unknown flag(s) {', '.join(unknown)}; known: {', '.join(FLAGS)}")
    return names


LoadMode = Literal["closed", "open"]
_SAFE = re.compile(r"[^A-Za-z0-9_.=@-]+")


def series_label(scenario: str, server_config: str) -> str:
    """A series is a scenario under one server configuration: `scenario` or `scenario@config`."""
    return scenario if server_config in ("", "default") else f"{scenario}@{server_config}"


def line_label(series: str, model: str, rows_per_request: int) -> str:
    """A line of a report: a series on one model and batch size (`fastapi-rest iris rows=1`)."""
    return f"{series} {model} rows={rows_per_request}"


class PointKey(Record):
    """Everything that changes the work a point measures; two points compare only on equal keys
    (except `repeat`, which tells repeats of one point apart)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str = Field(description="load-test scenario, e.g. mlserver-grpc")
    backend: str
    wire: str = Field(description="wire format: predict-json | v2-json | v2-grpc")
    server_config: str = "default"
    model: str
    rows_per_request: int
    load: LoadMode = "closed"
    concurrency: int = Field(description="closed: users; open: most requests in flight")
    rate: float | None = Field(default=None, description="open: arrivals per second")
    arrivals: Literal["constant", "poisson"] | None = None
    repeat: int = Field(default=1, ge=1)

    @property
    def series(self) -> str:
        return series_label(self.scenario, self.server_config)

    @property
    def line(self) -> str:
        return line_label(self.series, self.model, self.rows_per_request)

    @property
    def level(self) -> float:
        """The x of the point in its series: users (closed) or offered req/s (open)."""
        return self.rate if self.load == "open" and self.rate is not None else self.concurrency

    def point_id(self) -> str:
        """A folder name that sorts by series, model, rows, level, then repeat."""
        level = f"c{self.concurrency:04d}" if self.load == "closed" else f"r{self.rate or 0:08.1f}"
        parts = [self.series, self.model, f"rows{self.rows_per_request}", level]
        return _SAFE.sub("_", "--".join(parts)) + f"--rep{self.repeat:03d}"

    def work(self) -> tuple[object, ...]:
        """The key without the repeat: what repeats of one point share."""
        return tuple(v for k, v in self.model_dump().items() if k != "repeat")


class ProcessUsage(Record):
    """CPU and memory of one process tree (a server, or the load generator) during the point."""

    role: Literal["server", "generator", "harness"]
    name: str
    pids: list[int]
    cpu_percent: float = Field(description="100 = one core fully busy, over the measured window")
    cpu_seconds: float
    busiest_process_percent: float = Field(
        default=0.0, description="the busiest single process's CPU % (a generator saturates one)"
    )
    rss_bytes: int = Field(description="peak resident set size summed over the tree (overstates)")
    pss_bytes: int = Field(default=0, description="proportional set size: shared pages split")
    uss_bytes: int = Field(default=0, description="unique set size: pages only the tree holds")
    cpus: list[int] | None = Field(default=None, description="cores it was pinned to")


class Interference(Record):
    """What *other* processes used on our cores during the measured window.

    Per-core busy time (from /proc/stat) minus the CPU time of our own processes pinned there,
    in percent of one core; above a threshold the point is flagged `contended`.
    """

    server_cores: list[int] | None
    generator_cores: list[int] | None
    server_other_percent: float | None
    generator_other_percent: float | None
    idle_servers_percent: float = Field(
        description="CPU of the other configurations' idle servers on the server cores"
    )


class WorkerReport(Record):
    """What the collector knows about one process's records and clock."""

    node: str
    boot_id: str | None = None
    chunks: int = 0
    records: int = 0
    declared_chunks: int | None = None
    declared_records: int | None = None
    timed_connects: int = Field(
        default=0, description="requests that opened their connection inside the timed call"
    )
    clock_offset_ns: int = Field(default=0, description="worker clock minus the master's")
    clock_uncertainty_ns: int | None = Field(
        default=None, description="bound on the offset's error; None = could not be measured"
    )
    lost: bool = False
    reason: str | None = None


class GeneratorReport(Record):
    """What the load generator's collecting process wrote beside the records (`generator.json`).

    Times are absolute ns on its clock (`perf_counter_ns`, CLOCK_MONOTONIC).
    """

    t0_ns: int | None = Field(description="the first request's send time")
    from_ns: int | None = Field(description="start of the measured interval (t0 + warm-up)")
    to_ns: int | None = Field(description="end of the measured interval (a window's end)")
    stop_reason: str
    windows: int = 0
    workers: list[WorkerReport] = Field(default_factory=list)
    dropped: int = Field(
        default=0, description="open loop: measured arrivals no free slot could take"
    )
    arrivals: int = Field(
        default=0, description="open loop: arrivals meant for the measured interval"
    )
    seed: int | None = Field(default=None, description="open loop: arrival schedule seed")
    timed_connects: int = Field(
        default=0,
        description="requests (warm-up included) that had to open their connection inside the "
        "timed call: 0 when every connection was opened before it was measured",
    )


class InterleavePlan(Record):
    """How an interleaved session measures: slices of `slice_s`, the first `settle_s` of each
    left out (the series had been idle), `gap_s` between slices, `blocks` measured blocks
    (each series once at each level per block, in a shuffled order) after one warm-up block."""

    slice_s: float = Field(gt=0)
    settle_s: float = Field(ge=0)
    gap_s: float = Field(ge=0)
    blocks: int = Field(ge=1, description="measured blocks (at least, while the session runs)")
    seed: int
    max_blocks: int | None = Field(
        default=None,
        description="the most the time budget allowed, when the session stopped once decisive "
        "(`sweep.decisive`); None: exactly `blocks` were asked for",
    )
    ratio_precision: float | None = Field(
        default=None, description="the share within which the headline ratios were to lie"
    )


class SliceResult(Record):
    """One measured slice of an interleaved point; times in ns since the point's t0."""

    block: int = Field(description="the measured block it belongs to (pairs slices across series)")
    from_ns: int
    to_ns: int
    server_cpu_s: float | None = Field(
        default=None, description="CPU of the server's process tree inside the slice"
    )
    generator_busiest_percent: float | None = Field(
        default=None, description="the series' Locust process, % of a core inside the slice"
    )
    server_other_percent: float | None = None
    generator_other_percent: float | None = None


class ReferenceSlice(Record):
    """An external client's figures in one slice of the same session (wrk at one connection),
    beside the harness's own in the same block: what the instrument adds, on the real server."""

    block: int
    client: str
    rps: float
    p50_ms: float
    p99_ms: float


class PointResult(Versioned):
    point_id: str
    key: PointKey
    host: str
    server_name: str | None = Field(
        default=None, description="the server process (in `usage`) this point loaded"
    )
    started_at: str
    finished_at: str
    status: Literal["ok", "failed"]
    failure_reason: str | None = None
    flags: list[Flag] = Field(default_factory=list)
    flag_reasons: dict[str, str] = Field(default_factory=dict)
    method: Literal["points", "interleaved"] = Field(
        default="points",
        description="points: one interval measured until stable, repeated; interleaved: many "
        "short slices alternating with the other series (`slices`)",
    )
    plan: MeasurePlan | None = Field(
        default=None, description="points: warm-up, windows, stability rule and cap"
    )
    interleave: InterleavePlan | None = Field(
        default=None, description="interleaved: slice length, settle, gap, blocks"
    )
    slices: list[SliceResult] = Field(default_factory=list)
    references: list[ReferenceSlice] = Field(default_factory=list)
    timeout_s: float = Field(description="per-request timeout (shorter than the measured time)")
    measured_s: float | None = Field(
        default=None, description="the measured interval's length (end of warm-up to stop)"
    )
    converged: bool | None = Field(
        default=None, description="whether the last windows agreed before the cap"
    )
    stop_reason: str | None = Field(
        default=None, description="converged | cap | stopped (by Locust) | no-requests"
    )
    summary: LatencySummary | None = None
    windows: list[Window] = Field(default_factory=list)
    usage: list[ProcessUsage] = Field(default_factory=list)
    interference: Interference | None = None
    errors_by_outcome: dict[str, int] = Field(default_factory=dict)
    locust_rps: float | None = Field(default=None, description="Locust's own figure, for reference")
    generator_processes: int = Field(default=1, description="Locust processes that made the load")
    generator: GeneratorReport | None = None
    pinning: dict[str, list[int] | None] = Field(
        default_factory=dict, description="cores per role (server, generator); None = not pinned"
    )
    server_timing: ServerTiming | None = Field(
        default=None, description="the server's own account of the interval (its metrics)"
    )
    instrument_added_ms: float | None = Field(
        default=None,
        description="latency the load generator itself adds at this point's load, from the "
        "calibration curve (`make calibrate`); None without a matching calibration",
    )

    @property
    def series(self) -> str:
        return self.key.series
