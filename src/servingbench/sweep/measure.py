"""One point: Locust at N users against one scenario, measured from raw records, saved to disk.

Writes `point.json`, `requests.npz`, Locust's csv files and log into the point's folder. A
point that cannot run still gets a `point.json` (status `failed`, with the reason), so a run
folder always says what happened to every planned point.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from servingbench.atomic import atomic_write_bytes
from servingbench.loadgen.scenarios import Scenario
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, point_id
from servingbench.runs.point import PointResult, ProcessUsage, WindowRecord
from servingbench.runs.records import RequestRecords
from servingbench.runs.stats import measured_span_s, outcome_counts, summarize, windows
from servingbench.stack.settings import allowed_cpus
from servingbench.sweep.flags import generator_capacity, point_flags
from servingbench.sweep.locust import LocustJob, load_parts, read_locust_rps, run_locust
from servingbench.sweep.usage import Tracked, UsageSampler

__all__ = ["PointPlan", "failed_point", "measure_point", "measured_point"]

Health = Callable[[], str | None]
"""Returns why the scenario's server is unusable (dead, with its log tail), or None."""


@dataclass(frozen=True)
class PointPlan:
    """Everything that defines one point of the sweep."""

    scenario: Scenario
    concurrency: int
    host: str
    model: str
    rows_per_request: int
    duration_s: float
    warmup_s: float
    window_s: float
    processes: int = 1
    generator_cpus: list[int] | None = None
    server_cpus: list[int] | None = None
    server_config: str = "default"
    server_key: str = "default"
    """`backend:config` of the server this point loads (for its health)."""
    server_name: str | None = None
    """That server's process name in the usage records (for CPU accounting)."""
    ceiling_rps_per_core: float | None = None

    @property
    def point_id(self) -> str:
        return point_id(self.scenario.name, self.server_config, self.concurrency)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _base(plan: PointPlan, started_at: str) -> dict[str, object]:
    return {
        "point_id": plan.point_id,
        "scenario": plan.scenario.name,
        "backend": plan.scenario.backend,
        "protocol": plan.scenario.protocol,
        "server_config": plan.server_config,
        "server_name": plan.server_name,
        "model": plan.model,
        "host": plan.host,
        "concurrency": plan.concurrency,
        "rows_per_request": plan.rows_per_request,
        "duration_s": plan.duration_s,
        "warmup_s": plan.warmup_s,
        "window_s": plan.window_s,
        "started_at": started_at,
        "generator_processes": plan.processes,
        "pinning": {"server": plan.server_cpus, "generator": plan.generator_cpus},
        "generator_ceiling_rps": plan.ceiling_rps_per_core,
    }


def failed_point(
    plan: PointPlan, point_dir: Path, reason: str, started_at: str = ""
) -> PointResult:
    """Record a point that could not run; the reason should say what to look at."""
    result = PointResult.model_validate(
        {
            **_base(plan, started_at or _now()),
            "finished_at": _now(),
            "status": "failed",
            "failure_reason": reason,
            "flags": ["failed"],
        }
    )
    point_dir.mkdir(parents=True, exist_ok=True)
    result.save(point_dir / POINT_FILE)
    return result


def measured_point(
    plan: PointPlan,
    started_at: str,
    records: RequestRecords,
    usage: list[ProcessUsage],
    locust_rps: float | None,
) -> PointResult:
    """The `ok` result of a point from its records: summary, windows, flags, error counts.

    The measured duration used for req/s is saved as `measured_s`, so the report divides by
    the same span.
    """
    measured_s = measured_span_s(records, plan.warmup_s)
    summary = summarize(records, measured_s)
    wins = windows(records, plan.window_s)
    capacity = generator_capacity(plan.generator_cpus, plan.processes, len(allowed_cpus()))
    return PointResult.model_validate(
        {
            **_base(plan, started_at),
            "measured_s": measured_s,
            "finished_at": _now(),
            "status": "ok",
            "flags": point_flags(summary, wins, usage, capacity, plan.ceiling_rps_per_core),
            "summary": summary.as_dict(),
            "windows": [WindowRecord(**vars(w)) for w in wins],
            "usage": usage,
            "errors_by_outcome": outcome_counts(records),
            "locust_rps": locust_rps,
        }
    )


def keep_snapshot(parts_dir: Path, point_dir: Path) -> None:
    """Save the first Locust process's `loadgen-*.json` (what it sent, as run) as loadgen.json."""
    for snapshot in sorted(parts_dir.glob("loadgen-*.json"))[:1]:
        atomic_write_bytes(point_dir / "loadgen.json", snapshot.read_bytes())


def measure_point(
    plan: PointPlan,
    point_dir: Path,
    servers: Sequence[Tracked],
    health: Health,
) -> PointResult:
    """Run the point and save it; never raises for a point that merely failed."""
    started_at = _now()
    if (reason := health()) is not None:
        return failed_point(plan, point_dir, reason, started_at)
    point_dir.mkdir(parents=True, exist_ok=False)  # a point folder is never reused
    generator: list[psutil.Process] = []
    tracked = [
        Tracked("generator", "locust", lambda: generator, plan.generator_cpus),
        *servers,
    ]
    with tempfile.TemporaryDirectory(prefix="servingbench-parts-") as tmp:
        job = LocustJob(
            locustfile=plan.scenario.locustfile,
            users=plan.concurrency,
            run_time_s=plan.warmup_s + plan.duration_s,
            host=plan.host,
            out_dir=point_dir,
            records_dir=Path(tmp),
            model=plan.model,
            rows_per_request=plan.rows_per_request,
            processes=plan.processes,
            cpus=plan.generator_cpus,
        )
        with UsageSampler(tracked) as sampler:
            outcome = run_locust(job, on_start=lambda pid: generator.append(psutil.Process(pid)))
        parts = load_parts(Path(tmp))
        keep_snapshot(Path(tmp), point_dir)
    if (reason := health()) is not None:
        return failed_point(plan, point_dir, reason, started_at)
    if not parts:
        why = "timed out and was killed" if outcome.timed_out else f"exit code {outcome.returncode}"
        return failed_point(
            plan,
            point_dir,
            f"Locust wrote no request records ({why}); last lines of {job.log_path}:\n"
            f"{outcome.log_tail}",
            started_at,
        )
    t0_ns = min(int(p.start_ns.min()) for p in parts)
    warmup_ns = round(plan.warmup_s * 1e9)
    records = RequestRecords.concat(parts, warmup_ns)
    records.save(point_dir / RECORDS_FILE)
    measured_s = measured_span_s(records, plan.warmup_s)
    if measured_s <= 0 or not (~records.warmup).any():
        return failed_point(
            plan, point_dir, f"no request started after the {plan.warmup_s} s warm-up", started_at
        )
    end_ns = warmup_ns + round(measured_s * 1e9)
    usage = sampler.usage(t0_ns + warmup_ns, t0_ns + end_ns)
    result = measured_point(plan, started_at, records, usage, read_locust_rps(job.csv_prefix))
    result.save(point_dir / POINT_FILE)
    return result
