"""`make calibrate`: the instrument measured against no-op servers, so runs know its limits.

Per wire format, against a no-op server on the server cores (it answers the load's requests
with the real servers' bytes, in microseconds):
- the reference: the fastest client Python can be (`calibration.reference`), and `wrk` when it
  is installed (HTTP), at one connection;
- the curve: Locust (the sweep's own locustfile, validation on) at several user counts, with
  its req/s, CPU, busiest process and p50; the latency it adds at each load is its p50 minus the
  reference's. A sweep point looks its own load up on this curve (`client-bound`);
- the ceiling: the most req/s per core of generator CPU on the curve.
Written to `results/calibration/<id>.json` and `latest.json` (atomically); the curve's points
stay in `results/calibration/<id>/points/`.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from servingbench.calibration.noop import noop_spec
from servingbench.environment import git_commit, hardware_info, software_info
from servingbench.loadgen.payloads import build_payloads
from servingbench.loadgen.wrk import run_wrk
from servingbench.paths import project_root
from servingbench.runs.calibration import (
    LATEST,
    CalibrationRecord,
    CurvePoint,
    OpenLoopCeiling,
    ReferenceFigures,
    WireCalibration,
    calibration_dir,
)
from servingbench.runs.layout import RunLayout, create_run
from servingbench.runs.point import PointKey, PointResult
from servingbench.stack.launch import Launched, running
from servingbench.stack.processes import free_port, pin_argv
from servingbench.sweep import BenchSettings, measure_fixed_point
from servingbench.wire import WIRE_FORMATS, WireName

__all__ = ["CURVE_USERS", "TARGETS", "run_calibration"]

CURVE_USERS = (1, 2, 5, 10, 20, 50)
MAX_OPEN_RATE = 64_000.0
TARGETS = {"http_rps_per_core": 8000.0, "grpc_rps_per_core": 8000.0, "added_p50_ms": 0.03}
NOTES = [
    "No-op servers answer each request body the load generator sends with the response a real "
    "server gives it (our /predict document, MLServer's V2 JSON and gRPC messages), so "
    "Locust's response validation stays on and it reads the same bytes.",
    "added_p50_ms = Locust's p50 at that many users minus the reference client's p50 at one "
    "connection against the same no-op server: what the generator itself adds at that load "
    "(queueing inside the generator included).",
    "rps_per_core = req/s divided by the generator's CPU in cores over the measured window.",
]


def _reference(
    wire: WireName, where: str, settings: BenchSettings, seconds: float
) -> ReferenceFigures:
    argv = [sys.executable, "-m", "servingbench.calibration.reference", wire, where]
    argv += ["--model", settings.models[0], "--rows", str(settings.rows[0])]
    argv += ["--seconds", str(seconds), "--warmup", "1"]
    done = subprocess.run(
        pin_argv(argv, settings.pinning()[1]),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reference client failed ({done.returncode}):\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    client = "grpc stub" if WIRE_FORMATS[wire].transport == "grpc" else "raw socket"
    return ReferenceFigures(client=client, **figures)


def _curve_point(point: PointResult, reference: ReferenceFigures | None) -> CurvePoint | None:
    s = point.summary
    if s is None:
        return None
    generator = [u for u in point.usage if u.role == "generator"]
    processes = max(1, point.generator_processes)
    return CurvePoint(
        users=point.key.concurrency,
        rps=s.rps,
        rps_per_process=s.rps / processes,
        generator_cpu_percent=sum(u.cpu_percent for u in generator),
        busiest_process_percent=max((u.busiest_process_percent for u in generator), default=0),
        p50_ms=s.p50_ms,
        p99_ms=s.p99_ms,
        added_p50_ms=s.p50_ms - reference.p50_ms if reference else None,
    )


def _ceiling(curve: Sequence[CurvePoint]) -> float | None:
    per_core = [p.rps * 100.0 / p.generator_cpu_percent for p in curve if p.generator_cpu_percent]
    return max(per_core) if per_core else None


def _wire(
    wire: WireName,
    server: Launched,
    settings: BenchSettings,
    layout: RunLayout,
    users: Sequence[int],
    seconds: float,
) -> WireCalibration:
    transport = WIRE_FORMATS[wire].transport
    generator_cpus = settings.pinning()[1]
    where = f"{settings.host}:{server.spec.ports[transport]}"
    reference = _reference(wire, where, settings, seconds)
    external = None
    if transport == "http":
        body = build_payloads(wire, settings.models[0], settings.rows[0])[0].body
        path = WIRE_FORMATS[wire].path(settings.models[0])
        wrk = run_wrk(where, path, body, seconds, generator_cpus)
        external = ReferenceFigures(client="wrk", **wrk) if wrk else None
    curve = []
    for count in users:
        key = _noop_key(wire, settings, concurrency=count)
        point = measure_fixed_point(
            key,
            server,
            settings,
            seconds,
            layout.point_dir(key.point_id()),
            local_workers=settings.generator_workers,
        )
        if (entry := _curve_point(point, reference)) is not None:
            curve.append(entry)
    open_loop = _open_ceiling(wire, server, settings, layout, seconds)
    return WireCalibration(
        wire=wire,
        reference=reference,
        external=external,
        curve=curve,
        ceiling_rps_per_core=_ceiling(curve),
        open_loop=open_loop,
    )


def _noop_key(wire: WireName, settings: BenchSettings, **load: Any) -> PointKey:
    """A calibration point's key: the no-op server of `wire`, the run's first model and rows."""
    return PointKey(
        scenario=f"noop-{wire}",
        backend="noop",
        wire=wire,
        server_config="noop",
        model=settings.models[0],
        rows_per_request=settings.rows[0],
        **load,
    )


def _open_ceiling(
    wire: WireName,
    server: Launched,
    settings: BenchSettings,
    layout: RunLayout,
    seconds: float,
) -> OpenLoopCeiling | None:
    """The highest arrival rate one generator process keeps on schedule (lateness p99 within
    the bound, nothing dropped, the rate achieved): rates double from 500 req/s until one
    fails, then the last kept and the first failed are bisected to within 10 % (a power of two
    alone would flag points just above it as client-bound when the process kept them)."""

    def kept(rate: float) -> OpenLoopCeiling | None:
        key = _noop_key(
            wire, settings, load="open", concurrency=settings.max_in_flight, rate=round(rate, 1),
            arrivals=settings.arrivals,
        )  # fmt: skip
        point = measure_fixed_point(
            key,
            server,
            settings,
            seconds,
            layout.point_dir(key.point_id()),
            load_options={"--arrival-rate": f"{rate:g}", "--arrivals": settings.arrivals},
            extra_env={"GEVENT_BACKEND": "select"},
        )
        s = point.summary
        if (
            s is None
            or s.dropped
            or not s.lateness_p99_ms <= settings.lateness_bound_ms
            or s.rps < 0.95 * rate
        ):
            return None
        return OpenLoopCeiling(
            rate=rate, achieved_rps=s.rps, lateness_p99_ms=s.lateness_p99_ms, dropped=s.dropped
        )

    return highest_kept(kept)


T = TypeVar("T")


def highest_kept(
    kept: Callable[[float], T | None],
    start: float = 500.0,
    limit: float = MAX_OPEN_RATE,
    precision: float = 0.1,
) -> T | None:
    """The result at the highest rate `kept` accepts: double from `start` until a rate fails
    (or passes `limit`), then bisect (geometric mean) between the last kept and the first
    failed until the failed one is within `precision` above."""
    best: tuple[float, T] | None = None
    rate = start
    while rate <= limit and (found := kept(rate)) is not None:
        best, rate = (rate, found), rate * 2
    failed = rate if rate <= limit else None
    while best is not None and failed is not None and failed / best[0] - 1 > precision:
        middle = (best[0] * failed) ** 0.5
        if (found := kept(middle)) is None:
            failed = middle
        else:
            best = (middle, found)
    return best[1] if best is not None else None


def run_calibration(
    settings: BenchSettings,
    users: Sequence[int] = CURVE_USERS,
    seconds: float = 3.0,
    wires: Sequence[WireName] | None = None,
    progress: Callable[[str], None] = print,
) -> CalibrationRecord:
    """Measure every wire format against the no-op servers; write and return the record."""
    base = calibration_dir(settings.results_dir)
    layout = create_run(base, settings.run_id)  # default id: timestamp and pid, never reused
    server_cpus, generator_cpus = settings.pinning()
    wanted = list(wires or WIRE_FORMATS)
    record = CalibrationRecord(
        calibration_id=layout.run_id,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        git=git_commit(str(project_root())),
        hardware=hardware_info(),
        software=software_info(),
        pinning={"server": server_cpus, "generator": generator_cpus},
        model=settings.models[0],
        rows_per_request=settings.rows[0],
        targets=TARGETS,
        notes=NOTES,
    )
    transports = sorted({WIRE_FORMATS[w].transport for w in wanted})
    specs = [
        noop_spec(
            t,
            settings.host,
            free_port(settings.host),
            settings.models[0],
            settings.rows[0],
            layout.root / f"noop-{t}",
        )
        for t in transports
    ]
    with running(specs, layout.root, server_cpus, settings.startup_timeout_s) as ready:
        servers = {s.spec.name.removeprefix("noop-"): s for s in ready}
        for wire in wanted:
            entry = _wire(
                wire, servers[WIRE_FORMATS[wire].transport], settings, layout, users, seconds
            )
            record.wires[wire] = entry
            progress(_line(entry))
    record.write(base / f"{layout.run_id}.json")
    record.write(base / LATEST)
    return record


def _line(entry: WireCalibration) -> str:
    one = next((p for p in entry.curve if p.users == 1), None)
    open_loop = (
        f"; open loop on schedule up to {entry.open_loop.rate:,.0f} req/s (lateness p99 "
        f"{entry.open_loop.lateness_p99_ms:.2f} ms)"
        if entry.open_loop
        else "; open loop: no rate kept its schedule"
    )
    added = f"{one.added_p50_ms:+.3f} ms" if one and one.added_p50_ms is not None else "n/a"
    ceiling = f"{entry.ceiling_rps_per_core:,.0f}" if entry.ceiling_rps_per_core else "n/a"
    external = f", wrk p50 {entry.external.p50_ms:.3f} ms" if entry.external else ""
    reference = entry.reference
    return (
        f"{entry.wire:<13} ceiling {ceiling} req/s per core; at 1 user Locust adds {added} "
        f"(reference p50 {reference.p50_ms:.3f} ms{external}){open_loop}"
        if reference
        else f"{entry.wire}: no reference"
    )


def calibration_path(base: Path | None = None) -> Path:
    return calibration_dir(base) / LATEST
