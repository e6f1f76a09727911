"""The whole sweep: servers up, parity, every point in its planned order, servers down.

Every server stays up for the whole sweep so that repeats can interleave them (`sweep.plan`).
A series whose server died gets its remaining points recorded as failed (with the reason); the
others carry on. The sweep's own process keeps to the generator's cores while it samples, so
it never takes CPU from the server it measures, and is counted as ours in the interference
figures. Servers are stopped and meta.json finalised whatever happens (error, Ctrl-C, SIGTERM
turned into KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil

from servingbench.runs.calibration import CalibrationRecord, load_latest_calibration
from servingbench.runs.layout import RunLayout, create_run
from servingbench.runs.meta import RunMeta
from servingbench.runs.point import PointResult
from servingbench.runs.stats import MeasurePlan
from servingbench.servers import get_backend, get_scenario
from servingbench.sweep.flags import Thresholds
from servingbench.sweep.measure import PointPlan, measure_point
from servingbench.sweep.meta import environments_meta, initial_meta, now, servers_meta
from servingbench.sweep.parity_step import run_parity
from servingbench.sweep.plan import plan_keys, series_of
from servingbench.sweep.servers import BenchServers, start_servers
from servingbench.sweep.settings import BenchSettings
from servingbench.sweep.summary import progress_line
from servingbench.sweep.usage import Tracked

__all__ = ["AfterPoint", "SweepResult", "plan_points", "run_sweep"]

AfterPoint = Callable[[PointResult, BenchServers], None]
"""Called after each point (tests use it to kill a server between points)."""


@dataclass
class SweepResult:
    layout: RunLayout
    meta: RunMeta
    points: list[PointResult] = field(default_factory=list)


def measure_plan(settings: BenchSettings) -> MeasurePlan:
    return MeasurePlan(
        warmup_s=settings.warmup_s,
        window_s=settings.window_s,
        stability=settings.stability,
        max_duration_s=settings.max_duration_s,
    )


def plan_points(
    settings: BenchSettings, servers: BenchServers, calibration: CalibrationRecord | None
) -> list[PointPlan]:
    """Every point in run order; a series whose server never started still gets its points."""
    server_cpus, generator_cpus = settings.pinning()
    series = series_of(settings.scenarios, settings.configs(), settings.models, settings.rows)
    plans = []
    for key, one in plan_keys(series, settings.concurrency, settings.repeats, settings.seed):
        scenario = get_scenario(key.scenario)
        backend = get_backend(scenario.backend)
        running = servers.running.get(one.config.key)
        endpoint = next(e for e in backend.endpoints if e.scenario == scenario.name)
        host = (
            backend.endpoint_address(endpoint, settings.host, running.spec.ports)
            if running
            else ""
        )
        plans.append(
            PointPlan(
                key=key,
                host=host,
                plan=measure_plan(settings),
                timeout_s=settings.timeout_s,
                stop_grace_s=settings.stop_grace_s,
                processes=settings.processes,
                generator_cpus=generator_cpus,
                server_cpus=server_cpus,
                server_name=one.config.server_name,
                calibration=calibration,
                thresholds=Thresholds(
                    added_latency_ms=settings.added_latency_bound_ms,
                    contention_percent=settings.contention_percent,
                ),
            )
        )
    return plans


@contextlib.contextmanager
def _kept_on(cpus: list[int] | None) -> Iterator[list[int] | None]:
    """Run the sweep's own process on `cpus` (the generator's), restoring its affinity after."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield sorted(cpus)
    finally:
        os.sched_setaffinity(0, before)


def _harness(cpus: list[int] | None) -> Tracked:
    me = psutil.Process()
    return Tracked("harness", "servingbench", lambda: [me], cpus)


def run_sweep(
    settings: BenchSettings,
    progress: Callable[[str], None] = print,
    after_point: AfterPoint | None = None,
) -> SweepResult:
    """Run every point into a new run folder; returns the folder, meta and points."""
    layout = create_run(settings.results_dir, settings.run_id)
    calibration = load_latest_calibration(settings.results_dir)
    server_cpus, generator_cpus = settings.pinning()
    # decided once, before this process narrows its own affinity to the generator's cores
    settings = settings.model_copy(
        update={"server_cpus": server_cpus or [], "generator_cpus": generator_cpus or []}
    )
    with _kept_on(generator_cpus) as harness_cpus:
        meta = initial_meta(layout.run_id, settings, calibration, harness_cpus)
        result = SweepResult(layout, meta)
        meta.write(layout.meta)
        progress(f"run {layout.run_id}: results in {layout.root}")
        if calibration is None:
            progress("no calibration found (`make calibrate`): client-bound uses CPU only")
        elif reason := calibration.mismatch(settings.models[0], settings.rows[0]):
            progress(f"{reason}; client-bound uses CPU only")
        _sweep(settings, result, calibration, harness_cpus, progress, after_point)
    return result


def _sweep(
    settings: BenchSettings,
    result: SweepResult,
    calibration: CalibrationRecord | None,
    harness_cpus: list[int] | None,
    progress: Callable[[str], None],
    after_point: AfterPoint | None,
) -> None:
    layout, meta = result.layout, result.meta
    servers = BenchServers()
    try:
        backends = {get_scenario(s).backend for s in settings.scenarios}
        configs = [c for c in settings.configs() if c.backend in backends]
        progress(f"starting {', '.join(c.key for c in configs)} (cores {settings.pinning()[0]})")
        servers = start_servers(settings, layout.root / "servers", configs)
        for key, reason in servers.failures.items():
            progress(f"{key} did not start; its points will be marked failed:\n{reason}")
        meta.servers = servers_meta(servers)
        meta.environments = environments_meta(servers)
        meta.write(layout.meta)
        if not settings.skip_parity:
            meta.parity = run_parity(servers, settings.models)
            meta.write(layout.meta)
            progress(f"parity: {meta.parity.status} ({len(meta.parity.checks)} checks)")
        harness = _harness(harness_cpus)
        for plan in plan_points(settings, servers, calibration):
            health = functools.partial(servers.health, f"{plan.key.backend}:{plan.key.server_config}")
            point = measure_point(
                plan, layout.point_dir(plan.point_id), servers.tracked(), health, harness
            )
            result.points.append(point)
            progress(progress_line(point))
            if after_point is not None:
                after_point(point, servers)
        meta.status = "complete"
    except KeyboardInterrupt:
        meta.status = "interrupted"
        raise
    except BaseException:
        meta.status = "failed"
        raise
    finally:
        servers.stop()
        meta.servers = servers_meta(servers)
        meta.finished_at = now()
        meta.points = [p.point_id for p in result.points]
        meta.failed_points = [p.point_id for p in result.points if p.status == "failed"]
        meta.write(layout.meta)
