"""`make calibrate`: the instrument measured against no-op servers, so runs know its limits.

Per scenario (its locustfile, validation on) against a no-op server on the server cores:
- generator ceiling: req/s at `calibration_users` users, and per generator core (req/s divided
  by the generator's measured CPU in cores);
- added latency: Locust's p50 at one user minus the p50 of a minimal blocking client
  (`reference_client`) on the same cores, against the same no-op server.
Written to `results/calibration/<id>.json` and `latest.json` (atomically); the raw points stay
in `results/calibration/<id>/points/`.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from servingbench.atomic import atomic_write_json
from servingbench.environment import git_commit, hardware_info, software_info
from servingbench.loadgen.scenarios import get_scenario
from servingbench.paths import project_root
from servingbench.runs.layout import RunLayout, create_run
from servingbench.runs.point import PointResult
from servingbench.stack.processes import (
    ProcessHandle,
    free_port,
    http_ok,
    pin_argv,
    port_in_use,
    start_detached,
    stop_handle,
    tail,
    wait_until,
)
from servingbench.sweep.instrument import LATEST, calibration_dir
from servingbench.sweep.measure import PointPlan, measure_point
from servingbench.sweep.settings import BenchSettings
from servingbench.sweep.usage import Tracked

__all__ = ["TARGETS", "run_calibration"]

TARGETS = {"rest_rps_per_core": 8000.0, "grpc_rps_per_core": 5000.0, "added_p50_ms": 0.05}


def _start_noop(kind: str, settings: BenchSettings, layout: RunLayout) -> ProcessHandle:
    port = free_port(settings.host)
    argv = [sys.executable, "-m", "servingbench.sweep.noop", kind, "--host", settings.host]
    argv += ["--port", str(port), "--model", settings.model]
    argv += ["--rows", str(settings.rows_per_request)]
    handle = start_detached(
        f"noop-{kind}",
        argv,
        layout.root / f"noop-{kind}.log",
        cpus=settings.pinning()[0],
        cwd=project_root(),
    )
    check: Callable[[], bool] = (
        (lambda: http_ok(f"http://{settings.host}:{port}/"))
        if kind == "rest"
        else (lambda: port_in_use(port, settings.host))
    )
    try:
        wait_until(handle, [check], settings.startup_timeout_s)
    except BaseException:
        stop_handle(handle)  # not yet in the caller's cleanup list: a live one would be orphaned
        raise
    return handle


def _port(handle: ProcessHandle) -> int:
    return int(handle.argv[handle.argv.index("--port") + 1])


def _reference(protocol: str, address: str, settings: BenchSettings) -> dict[str, float]:
    argv = [sys.executable, "-m", "servingbench.sweep.reference_client", protocol, address]
    argv += ["--model", settings.model, "--rows", str(settings.rows_per_request)]
    argv += ["--seconds", str(settings.duration_s), "--warmup", str(settings.warmup_s)]
    done = subprocess.run(
        pin_argv(argv, settings.pinning()[1]),
        capture_output=True,
        text=True,
        timeout=settings.duration_s + settings.warmup_s + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reference client failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _point_figures(point: PointResult) -> dict[str, Any]:
    generator_cpu = sum(u.cpu_percent for u in point.usage if u.role == "generator")
    rps = point.summary.get("rps")
    return {
        "point_id": point.point_id,
        "status": point.status,
        "failure_reason": point.failure_reason,
        "flags": point.flags,
        "users": point.concurrency,
        "rps": rps,
        "p50_ms": point.summary.get("p50_ms"),
        "p99_ms": point.summary.get("p99_ms"),
        "error_rate": point.summary.get("error_rate"),
        "generator_cpu_percent": generator_cpu,
        "rps_per_core": rps * 100.0 / generator_cpu if rps and generator_cpu > 0 else None,
    }


def _scenario_entry(
    name: str, handle: ProcessHandle, settings: BenchSettings, layout: RunLayout, users: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    scenario = get_scenario(name)
    address = f"{settings.host}:{_port(handle)}"
    server_cpus, generator_cpus = settings.pinning()

    def health() -> str | None:
        if handle.alive():
            return None
        return f"no-op server exited; last lines of {handle.log_path}:\n{tail(handle.log_path)}"

    tracked = [
        Tracked("server", handle.name, lambda: [p] if (p := handle.process()) else [], server_cpus)
    ]
    figures = {}
    for label, count in (("ceiling", users), ("one_user", 1)):
        plan = PointPlan(
            scenario=scenario,
            concurrency=count,
            host=address if scenario.protocol == "grpc" else f"http://{address}",
            model=settings.model,
            rows_per_request=settings.rows_per_request,
            duration_s=settings.duration_s,
            warmup_s=settings.warmup_s,
            window_s=settings.window_s,
            processes=1,
            generator_cpus=generator_cpus,
            server_cpus=server_cpus,
            server_config="noop",
        )
        point = measure_point(plan, layout.point_dir(plan.point_id), tracked, health)
        figures[label] = _point_figures(point)
    reference = _reference(scenario.protocol, address, settings)
    locust_p50 = figures["one_user"]["p50_ms"]
    added = locust_p50 - reference["p50_ms"] if locust_p50 is not None else None
    kind = scenario.user_kind
    per_core = figures["ceiling"]["rps_per_core"]
    generator = {
        **figures["ceiling"],
        "validation": True,
        "target_rps_per_core": TARGETS[f"{kind}_rps_per_core"],
        "meets_target": per_core is not None and per_core >= TARGETS[f"{kind}_rps_per_core"],
    }
    latency = {
        "locust": figures["one_user"],
        "reference": reference,
        "reference_client": "grpcio stub" if kind == "grpc" else "http.client keep-alive",
        "added_p50_ms": added,
        "target_added_p50_ms": TARGETS["added_p50_ms"],
        "meets_target": added is not None and added <= TARGETS["added_p50_ms"],
    }
    return generator, latency


def run_calibration(
    settings: BenchSettings, users: int = 20, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure every scenario's locustfile against the no-op servers; returns the record."""
    base = calibration_dir(settings.results_dir)
    layout = create_run(base, settings.run_id)  # default id: timestamp and pid, never reused
    server_cpus, generator_cpus = settings.pinning()
    doc: dict[str, Any] = {
        "calibration_id": layout.run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_commit(str(project_root())),
        "hardware": hardware_info(),
        "software": software_info(),
        "pinning": {"server": server_cpus, "generator": generator_cpus},
        "model": settings.model,
        "rows_per_request": settings.rows_per_request,
        "parameters": {**settings.model_dump(mode="json"), "calibration_users": users},
        "targets": TARGETS,
        "generator": {},
        "added_latency": {},
        "notes": [
            "No-op servers answer each known request body with its precomputed, correct "
            "response (one dict lookup), so Locust's response validation stays on.",
            "rps_per_core = req/s at the ceiling point / generator CPU in cores over the "
            "measured window; a generator below ~90 % CPU was not saturated.",
        ],
    }
    kinds = {get_scenario(s).user_kind for s in settings.scenarios}
    handles: dict[str, ProcessHandle] = {}
    try:
        for kind in sorted(kinds):
            handles[kind] = _start_noop(kind, settings, layout)
        for name in settings.scenarios:
            handle = handles[get_scenario(name).user_kind]
            generator, latency = _scenario_entry(name, handle, settings, layout, users)
            doc["generator"][name] = generator
            doc["added_latency"][name] = latency
            progress(
                f"{name:<16} ceiling {generator['rps'] or 0:8.0f} req/s at {users} users "
                f"({generator['rps_per_core'] or 0:.0f}/core, CPU "
                f"{generator['generator_cpu_percent']:.0f} %)  added p50 "
                f"{(latency['added_p50_ms'] or float('nan')):.3f} ms"
            )
    finally:
        for handle in handles.values():
            stop_handle(handle)
    atomic_write_json(base / f"{layout.run_id}.json", doc)
    atomic_write_json(base / LATEST, doc)
    return doc
