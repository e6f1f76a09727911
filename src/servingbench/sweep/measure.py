"""One point: Locust against one server until its windows agree, measured, judged, saved.

Writes `point.json`, `requests.npz`, Locust's csv files and log into the point's folder. A
point that cannot run still gets a `point.json` (status `failed`, with the reason), so a run
folder always says what happened to every planned point.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import psutil

from servingbench.loadgen.settings import user_class_name
from servingbench.runs.calibration import CalibrationRecord
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, GeneratorFiles
from servingbench.runs.point import GeneratorReport, PointKey, PointResult
from servingbench.runs.records import RequestRecords
from servingbench.runs.schema import IncompatibleRunError
from servingbench.runs.stats import MeasurePlan, outcome_counts, summarize, windows
from servingbench.runs.timing import ServerTiming
from servingbench.servers.base import StageMetric, address
from servingbench.stack.launch import Launched
from servingbench.stack.processes import free_port
from servingbench.sweep.flags import FlagInputs, Thresholds, point_flags
from servingbench.sweep.locust import LocustJob, read_locust_rps, run_locust
from servingbench.sweep.server_timing import stages_of
from servingbench.sweep.settings import BenchSettings
from servingbench.sweep.usage import Tracked, UsageSampler
from servingbench.wire import get_wire

__all__ = [
    "Health",
    "PointPlan",
    "failed_point",
    "measure_fixed_point",
    "measure_point",
    "read_generator",
]

Health = Callable[[], str | None]
"""Returns why the point's server is unusable (dead, with its log tail), or None."""


@dataclass(frozen=True)
class PointPlan:
    """Everything that defines one point of the sweep, and how it is measured."""

    key: PointKey
    host: str
    plan: MeasurePlan
    timeout_s: float
    stop_grace_s: float
    local_workers: int = 0
    """0: one Locust process; N: a master and N local worker processes."""
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 5557
    generator_cpus: list[int] | None = None
    server_cpus: list[int] | None = None
    server_name: str | None = None
    """The loaded server's process name in the usage records (for CPU accounting)."""
    calibration: CalibrationRecord | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    metrics_url: str | None = None
    """The server's Prometheus endpoint, scraped at the interval's start and end."""
    stage_metrics: tuple[StageMetric, ...] = ()
    load_options: dict[str, str] = field(default_factory=dict)
    """More Locust options of the load, e.g. `--arrival-rate` (passed on to workers)."""
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def point_id(self) -> str:
        return self.key.point_id()

    @property
    def generator_processes(self) -> int:
        """Processes that send load (a master sends none)."""
        return max(1, self.local_workers + self.remote_workers)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _result(plan: PointPlan, started_at: str, **fields: object) -> PointResult:
    return PointResult.model_validate(
        {
            "point_id": plan.point_id,
            "key": plan.key,
            "host": plan.host,
            "server_name": plan.server_name,
            "started_at": started_at,
            "finished_at": _now(),
            "plan": plan.plan,
            "timeout_s": plan.timeout_s,
            "generator_processes": plan.generator_processes,
            "pinning": {"server": plan.server_cpus, "generator": plan.generator_cpus},
            **fields,
        }
    )


def failed_point(
    plan: PointPlan, point_dir: Path, reason: str, started_at: str = ""
) -> PointResult:
    """Record a point that could not run; the reason should say what to look at."""
    result = _result(
        plan,
        started_at or _now(),
        status="failed",
        failure_reason=reason,
        flags=["failed"],
        flag_reasons={"failed": reason.splitlines()[0]},
    )
    point_dir.mkdir(parents=True, exist_ok=True)
    result.write(point_dir / POINT_FILE)
    return result


def _job(plan: PointPlan, point_dir: Path, records_dir: Path) -> LocustJob:
    key = plan.key
    return LocustJob(
        users=key.concurrency,
        host=plan.host,
        out_dir=point_dir,
        records_dir=records_dir,
        plan=plan.plan,
        timeout_s=plan.timeout_s,
        stop_grace_s=plan.stop_grace_s,
        user_class=user_class_name(key.wire),
        options={
            "--model": key.model,
            "--rows-per-request": str(key.rows_per_request),
            "--request-timeout": f"{plan.timeout_s:g}",
            **plan.load_options,
        },
        env={**plan.extra_env, **_metrics_env(plan)},
        local_workers=plan.local_workers,
        remote_workers=plan.remote_workers,
        master_bind=plan.master_bind,
        master_port=plan.master_port if plan.remote_workers else free_port(),
        cpus=plan.generator_cpus,
    )


def _metrics_env(plan: PointPlan) -> dict[str, str]:
    return {"SERVINGBENCH_LOAD_METRICS_URL": plan.metrics_url} if plan.metrics_url else {}


def _server_timing(
    plan: PointPlan, records: RequestRecords, scrapes: dict[str, str], stop_reason: str
) -> ServerTiming | None:
    """The server's stages over the interval (two scrapes), and its per-request header times."""
    measured = records.measured()
    header = measured.server_ns[(measured.server_ns >= 0) & measured.ok] / 1e6
    timing = ServerTiming()
    if header.size:
        timing.header_mean_ms = float(header.mean())
        timing.header_p50_ms, timing.header_p99_ms = (
            float(v) for v in np.percentile(header, (50, 99))
        )
    if plan.metrics_url is None:
        timing.problem = "no metrics endpoint"
    elif {"from", "to"} - set(scrapes):
        timing.problem = f"the metrics at {plan.metrics_url} could not be read at both ends"
    elif stop_reason not in ("converged", "cap"):
        timing.problem = f"the point ended early ({stop_reason}): scrapes do not frame it"
    else:
        timing.stages = stages_of(
            scrapes["from"], scrapes["to"], plan.stage_metrics, plan.key.wire, plan.key.model
        )
    if not timing.stages and timing.header_mean_ms is None:
        return None if plan.metrics_url is None else timing
    return timing


Generated = tuple[GeneratorReport, RequestRecords, dict[str, str]]


def read_generator(records_dir: Path) -> Generated | None:
    """What a Locust run left in its records folder (None when it wrote nothing)."""
    files = GeneratorFiles(records_dir)
    if not (files.report.is_file() and files.records.is_file()):
        return None
    try:
        report = GeneratorReport.model_validate_json(files.report.read_bytes())
    except ValueError as exc:
        raise IncompatibleRunError(f"{files.report}: {exc}") from None
    scrapes = {
        end: path.read_text() for end in ("from", "to") if (path := files.metrics(end)).is_file()
    }
    return report, RequestRecords.load(files.records), scrapes


def _measured(report: GeneratorReport) -> bool:
    """Whether the generator sent requests over a measured interval (else no records to keep)."""
    return report.from_ns is not None and report.to_ns is not None and report.t0_ns is not None


def measure_point(
    plan: PointPlan,
    point_dir: Path,
    servers: Sequence[Tracked],
    health: Health,
    harness: Tracked | None = None,
) -> PointResult:
    """Run the point and save it; never raises for a point that merely failed."""
    started_at = _now()
    if (reason := health()) is not None:
        return failed_point(plan, point_dir, reason, started_at)
    point_dir.mkdir(parents=True, exist_ok=False)  # a point folder is never reused
    generator: list[psutil.Process] = []
    tracked = [  # in this order each process is counted once (see `sweep.usage`)
        Tracked("generator", "locust", lambda: generator, plan.generator_cpus),
        *(replace(t, memory=t.name == plan.server_name) for t in servers),
        *([replace(harness, memory=False)] if harness else []),
    ]
    # A hidden folder inside the point's, on the same file system: once checked, the
    # generator's records file is renamed to the point's, never written a second time.
    with tempfile.TemporaryDirectory(prefix=".records-", dir=point_dir) as tmp:
        job = _job(plan, point_dir, Path(tmp))
        with UsageSampler(tracked) as sampler:
            outcome = run_locust(job, on_start=lambda pid: generator.append(psutil.Process(pid)))
        read = read_generator(Path(tmp))
        dead = health()
        if dead is None and read is not None and _measured(read[0]):
            GeneratorFiles(Path(tmp)).records.replace(point_dir / RECORDS_FILE)
    if dead is not None:
        return failed_point(plan, point_dir, dead, started_at)
    if read is None:
        why = "timed out and was killed" if outcome.timed_out else f"exit code {outcome.returncode}"
        return failed_point(
            plan,
            point_dir,
            f"Locust wrote no records ({why}); last lines of {job.log_path}:\n{outcome.log_tail}",
            started_at,
        )
    report, records, scrapes = read
    # `_measured`, spelled out so the type checker knows the three are set below
    if report.from_ns is None or report.to_ns is None or report.t0_ns is None:
        return failed_point(
            plan, point_dir, f"no request was sent ({report.stop_reason})", started_at
        )
    if records.duration_s <= 0 or not records.measured_mask.any():
        return failed_point(
            plan, point_dir, f"no request started after the {plan.plan.warmup_s} s warm-up"
        )
    summary = summarize(records)
    usage = sampler.usage(report.from_ns, report.to_ns)
    interference = sampler.interference(
        report.from_ns,
        report.to_ns,
        usage,
        plan.server_cpus,
        plan.generator_cpus,
        plan.server_name,
    )
    calibration = plan.calibration
    if calibration is not None and calibration.mismatch(plan.key.model, plan.key.rows_per_request):
        calibration = None
    busiest = max((u.busiest_process_percent for u in usage if u.role == "generator"), default=0)
    users = (
        max(1, plan.key.concurrency // plan.generator_processes)
        if plan.key.load == "closed"
        else None
    )
    added = (
        calibration.added_latency_ms(plan.key.wire, busiest, users)
        if calibration is not None
        else None
    )
    wire_entry = calibration.wires.get(plan.key.wire) if calibration is not None else None
    open_ceiling = wire_entry.open_loop if wire_entry is not None else None
    offered = plan.key.rate / plan.generator_processes if plan.key.rate is not None else None
    converged = {"converged": True, "cap": False}.get(report.stop_reason)
    measured_windows = windows(records, plan.plan.window_s)
    inputs = FlagInputs(
        summary,
        converged,
        usage,
        interference,
        report,
        added,
        offered_rps_per_process=offered if plan.key.load == "open" else None,
        open_ceiling_rps=open_ceiling.rate if open_ceiling is not None else None,
        spreads=plan.plan.stability.spreads(measured_windows),
        too_few=plan.plan.stability.too_few(measured_windows),
        tolerances=plan.plan.stability,
    )
    flags, reasons = point_flags(inputs, plan.thresholds)
    result = _result(
        plan,
        started_at,
        status="ok",
        flags=flags,
        flag_reasons=reasons,
        measured_s=records.duration_s,
        converged=converged,
        stop_reason=report.stop_reason,
        summary=summary,
        windows=measured_windows,
        usage=usage,
        interference=interference,
        errors_by_outcome=outcome_counts(records),
        locust_rps=read_locust_rps(job.stats_path),
        generator=report,
        server_timing=_server_timing(plan, records, scrapes, report.stop_reason),
        instrument_added_ms=added,
    )
    result.write(point_dir / POINT_FILE)
    return result


def measure_fixed_point(
    key: PointKey,
    server: Launched,
    settings: BenchSettings,
    seconds: float,
    point_dir: Path,
    *,
    local_workers: int = 0,
    load_options: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> PointResult:
    """One fixed-length point (1 s windows, no stopping rule) against a server started outside
    the sweep (`make calibrate`'s no-op servers), pinned and CPU-tracked as a sweep point is.

    The request timeout is at most half the point, so a hang still shows up as timeouts.
    """
    server_cpus, generator_cpus = settings.pinning()
    wire = get_wire(key.wire)
    plan = PointPlan(
        key=key,
        host=address(wire.name, settings.host, server.spec.ports[wire.transport]),
        plan=MeasurePlan(warmup_s=1.0, window_s=1.0, max_duration_s=seconds, until_stable=False),
        timeout_s=min(settings.timeout_s, seconds / 2),
        stop_grace_s=settings.stop_grace_s,
        local_workers=local_workers,
        generator_cpus=generator_cpus,
        server_cpus=server_cpus,
        server_name=server.spec.name,
        load_options=dict(load_options or {}),
        extra_env=dict(extra_env or {}),
    )
    process = server.handle.process
    tracked = Tracked(
        "server", server.spec.name, lambda: [p] if (p := process()) else [], server_cpus
    )
    return measure_point(plan, point_dir, [tracked], lambda: None)
