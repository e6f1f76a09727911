"""The whole sweep: servers up, parity, every (concurrency, scenario) point, servers down.

Order is level-major (every scenario and server configuration at 1 user, then at 2, ...): with
every server up for the whole sweep, slow drift of a shared machine then spreads over all scenarios
instead of favouring the ones measured first. A scenario whose server died gets its remaining
points recorded as failed (with the reason); the other scenarios carry on. Servers are stopped
and meta.json finalised whatever happens (error, Ctrl-C, SIGTERM turned into KeyboardInterrupt).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from servingbench.loadgen.scenarios import get_scenario
from servingbench.runs.layout import RunLayout, create_run
from servingbench.runs.point import PointResult
from servingbench.sweep.instrument import (
    calibration_mismatch,
    ceiling_per_core,
    load_latest_calibration,
)
from servingbench.sweep.measure import PointPlan, measure_point
from servingbench.sweep.meta import initial_meta, servers_meta, write_meta
from servingbench.sweep.parity_step import run_parity
from servingbench.sweep.servers import BenchServers, start_servers
from servingbench.sweep.settings import BenchSettings
from servingbench.sweep.summary import progress_line

__all__ = ["AfterPoint", "SweepResult", "plan_points", "run_sweep"]

AfterPoint = Callable[[PointResult, BenchServers], None]
"""Called after each point (tests use it to kill a server between points)."""


@dataclass
class SweepResult:
    layout: RunLayout
    meta: dict[str, Any]
    points: list[PointResult] = field(default_factory=list)


def plan_points(
    settings: BenchSettings, servers: BenchServers, calibration: dict[str, Any] | None
) -> list[PointPlan]:
    """Every point in run order; a scenario whose server never started still gets its points."""
    server_cpus, generator_cpus = settings.pinning()
    plans = []
    for users in settings.concurrency:
        for name in settings.scenarios:
            scenario = get_scenario(name)
            kind = "grpc" if scenario.protocol == "grpc" else "http"
            scheme = "" if scenario.protocol == "grpc" else "http://"
            for config in settings.configs():
                if config.backend != scenario.backend:
                    continue
                running = servers.running.get(config.key)
                port = running.spec.ports[kind] if running else 0
                plans.append(
                    PointPlan(
                        scenario=scenario,
                        concurrency=users,
                        host=f"{scheme}{settings.host}:{port}",
                        model=settings.model,
                        rows_per_request=settings.rows_per_request,
                        duration_s=settings.duration_s,
                        warmup_s=settings.warmup_s,
                        window_s=settings.window_s,
                        processes=settings.processes,
                        generator_cpus=generator_cpus,
                        server_cpus=server_cpus,
                        server_config=config.name,
                        server_key=config.key,
                        server_name=running.spec.name if running else None,
                        ceiling_rps_per_core=ceiling_per_core(
                            calibration, name, settings.rows_per_request, settings.model
                        ),
                    )
                )
    return plans


def run_sweep(
    settings: BenchSettings,
    progress: Callable[[str], None] = print,
    after_point: AfterPoint | None = None,
) -> SweepResult:
    """Run every point into a new run folder; returns the folder, meta and points."""
    layout = create_run(settings.results_dir, settings.run_id)
    calibration = load_latest_calibration(settings.results_dir)
    result = SweepResult(layout, initial_meta(layout.run_id, settings, calibration))
    write_meta(layout.meta, result.meta)
    progress(f"run {layout.run_id}: results in {layout.root}")
    if calibration is None:
        progress("no calibration found (`make calibrate`): client-bound uses generator CPU only")
    elif reason := calibration_mismatch(calibration, settings.rows_per_request, settings.model):
        progress(f"{reason}; client-bound uses generator CPU only")
    servers = BenchServers()
    status = "failed"
    try:
        backends = {get_scenario(s).backend for s in settings.scenarios}
        configs = [c for c in settings.configs() if c.backend in backends]
        keys = ", ".join(c.key for c in configs)
        progress(f"starting {keys} (pinned to {settings.pinning()[0]})")
        servers = start_servers(settings, layout.root / "servers", configs)
        for key, reason in servers.failures.items():
            progress(f"{key} did not start; its points will be marked failed:\n{reason}")
        write_meta(layout.meta, result.meta, servers=servers_meta(servers))
        if not settings.skip_parity:
            parity = run_parity(settings, servers)
            write_meta(layout.meta, result.meta, parity=parity)
            progress(f"parity: {parity.get('status')}")
        for plan in plan_points(settings, servers, calibration):
            health = functools.partial(servers.health, plan.server_key)
            point = measure_point(plan, layout.point_dir(plan.point_id), servers.tracked(), health)
            result.points.append(point)
            progress(progress_line(point))
            if after_point is not None:
                after_point(point, servers)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        servers.stop()
        write_meta(
            layout.meta,
            result.meta,
            status=status,
            servers=servers_meta(servers),
            points=[p.point_id for p in result.points],
            failed_points=[p.point_id for p in result.points if p.status == "failed"],
        )
    return result
