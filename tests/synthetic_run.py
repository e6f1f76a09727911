"""A synthetic run folder written with the real classes, for report and notebook tests.

Closed-loop users with lognormal latencies whose median grows with concurrency; a few errors
of several outcome classes; one client-bound point, one unstable point, one failed point
without records; one point saved the way older sweeps did (no `measured_s`, `window_s`, nor
a per-window p99). Each point.json carries a deliberately wrong `summary`, so a test can prove
the report recomputes every figure from requests.npz. Server CPU seconds cover a sampled span
shorter than the measured window, as `sweep.usage` samples (every 0.25 s, none at the end).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from servingbench.atomic import atomic_write_json
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, RunLayout, create_run, point_id
from servingbench.runs.point import Flag, PointResult, ProcessUsage, WindowRecord
from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.stats import measured_span_s, windows

__all__ = [
    "CLIENT_BOUND",
    "CONCURRENCY",
    "FAILED",
    "LEGACY",
    "SERIES",
    "UNSTABLE",
    "WARMUP_S",
    "WINDOW_S",
    "make_run",
]

NS = 1_000_000_000
# (scenario, server_config, backend, protocol, median ms at N=1)
SERIES: tuple[tuple[str, str, str, str, float], ...] = (
    ("fastapi-rest", "default", "fastapi", "rest", 0.9),
    ("mlserver-rest", "default", "mlserver", "v2-rest", 1.8),
    ("mlserver-grpc", "default", "mlserver", "grpc", 1.4),
    ("mlserver-rest", "batching", "mlserver", "v2-rest", 2.5),
)
CONCURRENCY = (1, 4, 16)
FAILED = ("mlserver-grpc", "default", 16)
CLIENT_BOUND = ("fastapi-rest", "default", 16)
UNSTABLE = ("mlserver-rest", "batching", 4)
LEGACY = ("mlserver-rest", "default", 1)  # saved without measured_s, window_s, window p99
DURATION_S = 4.0
SAMPLED_S = DURATION_S - 0.3  # the CPU sampler's span inside the measured window
WARMUP_S = 1.0
WINDOW_S = 1.0
SERVER_NAMES = {"mlserver": "mlserver", "fastapi": "api"}  # meta.json's servers, name -> backend
IDLE = {"mlserver": "fastapi", "fastapi": "mlserver"}  # the other server, sampled but idle


def _records(rng: np.random.Generator, median_ms: float, users: int) -> RequestRecords:
    """Each user sends back to back until the duration is over; errors are 1 % of requests."""
    per_user = int((WARMUP_S + DURATION_S) * 1000 / median_ms * 1.5) + 10
    lat = rng.lognormal(np.log(median_ms * 1e6), 0.35, size=(users, per_user)).astype(np.int64)
    start = np.cumsum(lat, axis=1) - lat + rng.integers(0, 50_000, size=(users, 1))
    keep = start < (WARMUP_S + DURATION_S) * NS
    start, lat = start[keep], lat[keep]
    order = np.argsort(start, kind="stable")
    start, lat = start[order], lat[order]
    outcome = np.zeros(start.size, dtype=np.int8)
    errors = rng.random(start.size) < 0.01
    outcome[errors] = rng.choice(
        [Outcome.HTTP_STATUS, Outcome.TIMEOUT, Outcome.CONNECTION], size=int(errors.sum())
    )
    counts = {Outcome(o).label: int((outcome == o).sum()) for o in np.unique(outcome[errors])}
    reasons = {label: {f"synthetic {label}": n} for label, n in counts.items()}
    return RequestRecords(start, lat, outcome, start < WARMUP_S * NS, reasons)


def _usage(
    cpu: float, rss_mb: float, role: Literal["server", "generator"], name: str
) -> ProcessUsage:
    return ProcessUsage(
        role=role,
        name=name,
        pids=[1],
        cpu_percent=cpu,
        cpu_seconds=cpu / 100 * SAMPLED_S,
        rss_bytes=int(rss_mb * 1e6),
    )


def _point(
    layout: RunLayout, rng: np.random.Generator, spec: tuple[Any, ...], n: int, scale: float
) -> None:
    scenario, config, backend, protocol, median_ms = spec
    pid = point_id(scenario, config, n)
    folder = layout.point_dir(pid)
    key = (scenario, config, n)
    flags: list[Flag] = []
    record_windows: list[WindowRecord] = []
    measured_s: float | None = None
    if key != FAILED:
        records = _records(rng, scale * median_ms * (1 + 0.6 * (n - 1)), n)
        records.save(folder / RECORDS_FILE)
        old = {"p99_ms"} if key == LEGACY else set()
        record_windows = [
            WindowRecord(**{k: v for k, v in vars(w).items() if k not in old})
            for w in windows(records, WINDOW_S)
        ]
        measured_s = None if key == LEGACY else measured_span_s(records, WARMUP_S)
        marks: dict[tuple[str, str, int], list[Flag]] = {
            CLIENT_BOUND: ["client-bound"],
            UNSTABLE: ["unstable"],
        }
        flags = marks.get(key, [])
    gen_cpu = 95.0 if key == CLIENT_BOUND else 40.0
    PointResult(
        point_id=pid,
        scenario=scenario,
        backend=backend,
        protocol=protocol,
        server_config=config,
        model="iris",
        host="127.0.0.1",
        concurrency=n,
        rows_per_request=1,
        duration_s=DURATION_S,
        warmup_s=WARMUP_S,
        measured_s=measured_s,
        window_s=None if key == LEGACY else WINDOW_S,
        started_at="2025-01-01T00:00:00",
        finished_at="2025-01-01T00:00:05",
        status="failed" if key == FAILED else "ok",
        failure_reason="server did not become ready" if key == FAILED else None,
        flags=["failed"] if key == FAILED else flags,
        summary={"p50_ms": -1.0, "p99_ms": -1.0, "rps": -1.0},  # wrong on purpose
        windows=record_windows,
        usage=[]
        if key == FAILED
        else [
            _usage(90.0, 250, "server", SERVER_NAMES[backend]),
            # the sweep samples every running server; the idle one must not count
            _usage(2.0, 80, "server", SERVER_NAMES[IDLE[backend]]),
            _usage(gen_cpu, 60, "generator", "locust"),
        ],
    ).save(folder / POINT_FILE)


def make_run(base: Path, run_id: str = "synthetic", seed: int = 7, scale: float = 1.0) -> RunLayout:
    """Write a complete synthetic run under `base/run_id`; `scale` multiplies every latency."""
    layout = create_run(base, run_id)
    rng = np.random.default_rng(seed)
    for spec in SERIES:
        for n in CONCURRENCY:
            _point(layout, rng, spec, n, scale)
    atomic_write_json(
        layout.meta,
        {
            "run_id": run_id,
            "started_at": "2025-01-01T00:00:00",
            "finished_at": "2025-01-01T00:01:00",
            "status": "complete",
            "git": {"commit": "0" * 40, "dirty": True},
            "hardware": {
                "cpu_model": "Synthetic CPU",
                "logical_cores": 2,
                "memory_total_bytes": 8 * 2**30,
                "os": "Linux",
            },
            "software": {"python": "3.11.9", "packages": {"mlserver": "1.7.1"}},
            "servers": {
                "mlserver": {
                    "backend": "mlserver",
                    "argv": ["mlserver", "start", "repo"],
                    "cpus": [0],
                    "config": {"parallel_workers": 0},
                },
                "api": {"backend": "fastapi", "argv": ["uvicorn", "app"], "cpus": [0]},
            },
            "sweep": {
                "scenarios": sorted({s[0] for s in SERIES}),
                "concurrency": list(CONCURRENCY),
                "duration_s": DURATION_S,
                "warmup_s": WARMUP_S,
                "rows_per_request": 1,
                "model": "iris",
            },
            # pinning and notes left out on purpose: optional keys must show as n/a
        },
    )
    return layout
