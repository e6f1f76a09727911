"""The whole sweep: servers up, parity, every point in its planned order, servers down.

Every server stays up for the whole sweep so that repeats can interleave them (`sweep.plan`).
A series whose server died gets its remaining points recorded as failed (with the reason); the
others carry on. The sweep's own process keeps to the server's cores while it samples, so it
never delays the load generator, and is counted as ours in the interference figures. Servers
are stopped and meta.json finalised whatever happens (error, Ctrl-C, SIGTERM turned into
KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil

from servingbench.runs.calibration import CalibrationRecord, load_latest_calibration
from servingbench.runs.layout import RECORDS_FILE, RunLayout, create_run
from servingbench.runs.meta import CapacityRecord, ModelCost, RunMeta
from servingbench.runs.point import InterleavePlan, PointKey, PointResult
from servingbench.runs.records import RequestRecords
from servingbench.runs.slo import Slo
from servingbench.servers import ServerConfig, get_backend, get_scenario
from servingbench.stack.processes import pin_argv
from servingbench.sweep.capacity import Search, judge
from servingbench.sweep.decisive import MIN_BLOCKS
from servingbench.sweep.interleave import SessionSeries, run_session, wrk_target
from servingbench.sweep.measure import measure_point
from servingbench.sweep.meta import environments_meta, initial_meta, now, servers_meta
from servingbench.sweep.parity_step import run_parity
from servingbench.sweep.plan import Series, closed_keys, key_of, open_keys, point_plan, series_of
from servingbench.sweep.progress import Progress
from servingbench.sweep.servers import BenchServers, start_servers
from servingbench.sweep.settings import BenchSettings
from servingbench.sweep.summary import progress_line
from servingbench.sweep.targets import check_targets, parse_targets
from servingbench.sweep.usage import Tracked

__all__ = ["AfterPoint", "SweepResult", "run_sweep"]

AfterPoint = Callable[[PointResult, BenchServers], None]
"""Called after each point (tests use it to kill a server between points)."""


FINISH_S = 20.0
"""What a run needs after its interleaved session (its points' figures, files and summary):
the session ends this long before the budget."""


@dataclass
class SweepResult:
    layout: RunLayout
    meta: RunMeta
    points: list[PointResult] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    """When the run began (`time.monotonic`): its time budget counts from here."""


@contextlib.contextmanager
def _kept_on(cpus: list[int] | None) -> Iterator[list[int] | None]:
    """Run the sweep's own process on `cpus` (the servers'), restoring its affinity after."""
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
    """Run every point into a new run folder; returns the folder, meta and points.

    `progress` takes each line; a `Progress` also counts the units of work (`sweep.progress`).
    Every line goes to the run's bench.log too.
    """
    layout = create_run(settings.results_dir, settings.run_id)
    reporter = progress if isinstance(progress, Progress) else Progress(progress)
    reporter.log_to(layout.log)
    try:
        return _run(settings, layout, reporter, after_point)
    finally:
        reporter.close_log()


def _run(
    settings: BenchSettings, layout: RunLayout, progress: Progress, after_point: AfterPoint | None
) -> SweepResult:
    calibration = load_latest_calibration(settings.results_dir)
    server_cpus, generator_cpus = settings.pinning()
    # decided once, before this process narrows its own affinity to the generator's cores
    settings = settings.model_copy(
        update={"server_cpus": server_cpus or [], "generator_cpus": generator_cpus or []}
    )
    # Off the generator's cores: the usage sampler's ticks there delayed open-loop arrivals
    # by milliseconds; on the server's, its small CPU is measured and counted as ours.
    with _kept_on(server_cpus) as harness_cpus:
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


class _Measurer:
    """Measures points in order, keeping the run's list and progress (one place for all modes)."""

    def __init__(
        self,
        settings: BenchSettings,
        result: SweepResult,
        servers: BenchServers,
        calibration: CalibrationRecord | None,
        harness: Tracked,
        progress: Progress,
        after_point: AfterPoint | None,
    ) -> None:
        self.settings, self.result, self.servers = settings, result, servers
        self.calibration, self.harness = calibration, harness
        self.progress, self.after_point = progress, after_point

    def records(self, point: PointResult) -> RequestRecords | None:
        """A measured point's raw records (None for a point that could not run)."""
        path = self.result.layout.point_dir(point.point_id) / RECORDS_FILE
        return RequestRecords.load(path) if point.summary is not None and path.is_file() else None

    def __call__(self, key: PointKey, series: Series, tail_requests: int = 0) -> PointResult:
        plan = point_plan(key, series, self.settings, self.servers, self.calibration, tail_requests)
        health = functools.partial(self.servers.health, series.config.key, key.scenario)
        folder = self.result.layout.point_dir(plan.point_id)
        point = measure_point(plan, folder, self.servers.tracked(), health, self.harness)
        self.result.points.append(point)
        self.progress.advance(progress_line(point))
        if self.after_point is not None:
            self.after_point(point, self.servers)
        return point


def _peaks(measure: _Measurer, series: list[Series]) -> dict[Series, float]:
    """Each series' closed-loop req/s at the highest user count: what `--rates auto` scales."""
    users = max(measure.settings.concurrency)
    measure.progress(f"closed-loop peak of each series at {users} users, for the open-loop rates")
    measure.progress.begin(len(series), "peak points")
    peaks = {}
    for key, one in closed_keys(series, [users], 1, measure.settings.seed):
        point = measure(key, one)
        peaks[one] = point.summary.ok_rps if point.summary else math.nan
    return peaks


def _open_rates(
    settings: BenchSettings, series: list[Series], peaks: dict[Series, float]
) -> dict[Series, list[float]]:
    if settings.rates != "auto":
        return {s: list(settings.rates) for s in series}
    return {
        s: [f * peaks[s] for f in settings.auto_fractions]
        for s in series
        if math.isfinite(peaks.get(s, math.nan)) and peaks[s] > 0
    }


def _search(
    measure: _Measurer, series: list[Series], peaks: dict[Series, float], slo: Slo
) -> dict[Series, Search]:
    """Capacity under `slo` for every series, in rounds of interleaved probes."""
    settings = measure.settings
    searches = {}
    for s in series:
        peak = peaks.get(s, math.nan)
        known = math.isfinite(peak) and peak > 0
        start = peak / 2 if known else (settings.rates[0] if settings.rates != "auto" else 100.0)
        searches[s] = Search(
            start=start,
            floor=max(1.0, start / 64),
            ceiling=4 * peak if known else 100_000.0,
            precision=settings.slo_precision,
        )
    measure.progress.begin(None, "probes", "a search picks its probes as it goes")
    round_ = 0
    while probes := {s: r for s, search in searches.items() if (r := search.next_rate())}:
        round_ += 1
        measure.progress(
            f"SLO {slo.text}, round {round_}: "
            + ", ".join(f"{s.label} at {r:.0f} req/s" for s, r in probes.items())
        )
        keys = open_keys(
            {s: [r] for s, r in probes.items()},
            settings.repeats,
            settings.seed + round_,
            settings.max_in_flight,
            settings.arrivals,
        )
        done: dict[Series, list[PointResult]] = {s: [] for s in probes}
        for key, one in keys:
            done[one].append(measure(key, one, slo.requests_needed()))
        for one, repeats in done.items():
            probe = judge(repeats, [measure.records(p) for p in repeats], slo)
            searches[one].record(probe)
            measure.progress(f"  {one.label} at {probe.rate:.0f} req/s: {probe.why}")
    return searches


def _interleaved(measure: _Measurer, series: list[Series]) -> None:
    """Every closed-loop point of the run in one interleaved session (`sweep.interleave`)."""
    settings = measure.settings
    levels = sorted(settings.concurrency)
    members = []
    for one in series:
        plans = {
            users: point_plan(
                key_of(one, concurrency=users, repeat=1), one, settings, measure.servers,
                measure.calibration,
            )
            for users in levels
        }  # fmt: skip
        top = plans[levels[-1]]
        member = SessionSeries(
            plans=plans,
            label=one.label,
            health=functools.partial(measure.servers.health, one.config.key, one.scenario.name),
        )
        if (target := wrk_target(top)) is not None:
            member.wrk_url, member.wrk_body = target
        members.append(member)
    fixed = settings.blocks is not None
    plan = InterleavePlan(
        slice_s=settings.slice_s,
        settle_s=settings.settle_s,
        gap_s=settings.gap_s,
        blocks=settings.blocks or MIN_BLOCKS,
        seed=settings.seed,
        ratio_precision=None if fixed else settings.ratio_precision,
    )
    progress = measure.progress
    points = run_session(
        members,
        levels,
        plan,
        measure.result.layout,
        measure.servers.tracked(),
        measure.harness,
        progress,
        None if fixed else measure.result.started + settings.budget_s - FINISH_S,
    )
    for point in points:
        measure.result.points.append(point)
        measure.progress(progress_line(point))


def _model_costs(settings: BenchSettings, progress: Callable[[str], None]) -> list[ModelCost]:
    """Each model and batch size's in-process cost, pinned to the server's core."""
    costs = []
    for model in settings.models:
        for rows in settings.rows:
            argv = [sys.executable, "-m", "servingbench.models.cost", "--model", model]
            argv += ["--rows", str(rows), "--seconds", "1"]
            done = subprocess.run(
                pin_argv(argv, settings.pinning()[0]),
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            cost = ModelCost(model=model, rows_per_request=rows, **json.loads(done.stdout))
            costs.append(cost)
    progress(
        "model cost in-process (p50): "
        + ", ".join(f"{c.model} x{c.rows_per_request} {c.p50_ms:.3f} ms" for c in costs)
    )
    return costs


def target_configs(backends: set[str]) -> list[ServerConfig]:
    """A target's configuration is unknown to us: one `target` configuration per backend."""
    return [
        ServerConfig(
            name, "target", get_backend(name).options(), "a server the sweep did not start"
        )
        for name in sorted(backends)
    ]


def _use_targets(settings: BenchSettings, meta: RunMeta, progress: Progress) -> BenchServers:
    """Check every target before any load (TargetError otherwise) and record what they are."""
    targets = parse_targets(settings.targets, settings.metrics_urls)
    progress("targets: " + ", ".join(f"{t.name}={t.address}" for t in targets))
    ca = str(settings.ca_bundle) if settings.ca_bundle else None
    records, parity = check_targets(targets, settings.models, ca)
    meta.targets = records
    meta.parity = parity
    progress(f"targets ready; parity: passed ({len(parity.checks)} checks)")
    return BenchServers(targets={t.name: t.address for t in targets})


def _drive(
    settings: BenchSettings, measure: _Measurer, series: list[Series], meta: RunMeta
) -> None:
    """Every point of the plan: closed levels, or open rates (fixed, from the closed peaks, or
    searched for the SLO's capacity)."""
    if settings.interleaved():
        _interleaved(measure, series)
        return
    if settings.load == "closed":
        keys = closed_keys(series, settings.concurrency, settings.repeats, settings.seed)
        measure.progress.begin(len(keys), "points")
        for key, one in keys:
            measure(key, one)
        return
    peaks = _peaks(measure, series) if settings.rates == "auto" else {}
    objective = settings.objective()
    if objective is not None:
        searches = _search(measure, series, peaks, objective)
        meta.capacity = [CapacityRecord.of(one.label, search) for one, search in searches.items()]
        return
    rates = _open_rates(settings, series, peaks)
    keys = open_keys(
        rates, settings.repeats, settings.seed, settings.max_in_flight, settings.arrivals
    )
    measure.progress.begin(len(keys), "points")
    for key, one in keys:
        measure(key, one)


def _sweep(
    settings: BenchSettings,
    result: SweepResult,
    calibration: CalibrationRecord | None,
    harness_cpus: list[int] | None,
    progress: Progress,
    after_point: AfterPoint | None,
) -> None:
    layout, meta = result.layout, result.meta
    servers = BenchServers()
    try:
        scenarios = [get_scenario(name) for name in settings.scenarios]  # resolved once, here
        backends = {s.backend for s in scenarios}
        if settings.targets:
            configs = target_configs(backends)
            servers = _use_targets(settings, meta, progress)
        else:
            configs = [c for c in settings.configs() if c.backend in backends]
            progress(
                f"starting {', '.join(c.key for c in configs)} (cores {settings.pinning()[0]})"
            )
            servers = start_servers(settings, layout.root / "servers", configs)
            for key, reason in servers.failures.items():
                progress(f"{key} did not start; its points will be marked failed:\n{reason}")
            meta.servers = servers_meta(servers)
            meta.environments = environments_meta(servers)
        meta.write(layout.meta)
        if not settings.skip_parity and not settings.targets:
            meta.parity = run_parity(servers, settings.models)
            meta.write(layout.meta)
            progress(f"parity: {meta.parity.status} ({len(meta.parity.checks)} checks)")
        meta.model_costs = _model_costs(settings, progress)
        meta.write(layout.meta)
        measure = _Measurer(
            settings, result, servers, calibration, _harness(harness_cpus), progress, after_point
        )
        series = series_of(scenarios, configs, settings.models, settings.rows)
        _drive(settings, measure, series, meta)
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
