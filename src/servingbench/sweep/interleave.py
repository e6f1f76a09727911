"""Closed-loop comparisons in interleaved slices: the series take turns faster than the drift.

On a shared machine the speed of everything drifts over seconds to minutes. Measured one after
the other, minutes apart, two series each carry their own share of that drift, and a few
repeats cannot average it out. Here every series of the comparison has its own Locust process,
all started at once, every user connected and idle; a schedule then gives each series short
slices in turn (`loadgen.schedule`), so series are compared seconds apart, many times over.

A session is one warm-up block (each series once, with all its users) and `blocks` measured
blocks. A measured block visits the user counts in a shuffled order and, at each, every series
once in a shuffled order: the slices of two series at one level are never more than a block's
level apart in time, and repeat k of every series is block k. The first `settle_s` of each
slice is not measured (the series had been idle), and slices are `gap_s` apart, in which the
servers' metrics are scraped so that the scrape never loads a measured slice.

The sweep's own process walks the schedule beside the load: at each slice's measured start and
end it samples the CPU of every server tree and Locust process and of every core, so each slice
has its server's CPU time (the cost per request), its Locust process's load and what others took
from the cores. Where `wrk` is installed, each REST series at one user also gets wrk slices in
the same blocks: the harness's latency beside the fastest HTTP client there is, on the real
server, pair by pair.

Each (series, user count) becomes one point (`method="interleaved"`) whose `slices` list its
measured slices and whose `requests.npz` holds every request of them.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import psutil

from servingbench.loadgen.payloads import build_payloads
from servingbench.loadgen.schedule import SliceOrder, ready_path, write_schedule
from servingbench.loadgen.settings import user_class_name
from servingbench.loadgen.wrk import run_wrk
from servingbench.runs.calibration import CalibrationRecord
from servingbench.runs.layout import POINT_FILE, RECORDS_FILE, RunLayout
from servingbench.runs.point import (
    GeneratorReport,
    Interference,
    InterleavePlan,
    PointResult,
    ProcessUsage,
    ReferenceSlice,
    SliceResult,
)
from servingbench.runs.records import RequestRecords
from servingbench.runs.stats import outcome_counts, summarize
from servingbench.runs.timing import ServerTiming
from servingbench.sweep.decisive import OwnSlice, SessionJudge, blocks_within
from servingbench.sweep.flags import FlagInputs, point_flags
from servingbench.sweep.locust import LocustJob, RunningLocust, read_locust_rps, start_locust
from servingbench.sweep.measure import PointPlan, read_generator
from servingbench.sweep.progress import Progress
from servingbench.sweep.server_timing import stages_over
from servingbench.sweep.usage import Tracked, UsageSampler
from servingbench.wire import get_wire

__all__ = [
    "Cell",
    "PlannedSlice",
    "SessionSeries",
    "run_session",
    "session_slices",
    "wrk_target",
]

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
START_LEAD_S = 0.5
"""The schedule starts this long after it is written: every process has read it by then."""
SCRAPE_TIMEOUT_S = 2.0

Client = Literal["locust", "wrk"]


@dataclass(frozen=True)
class Cell:
    """What one slice measures: a series (by its index in the session) at a user count, with
    the harness's own client or with wrk."""

    series: int
    users: int
    client: Client = "locust"


@dataclass(frozen=True)
class PlannedSlice:
    cell: Cell
    block: int
    """0 for the warm-up block; measured blocks count from 1."""
    start_ns: int
    end_ns: int
    settle_ns: int

    @property
    def measured_from_ns(self) -> int:
        return self.start_ns + self.settle_ns


def session_slices(
    cells: Sequence[Cell],
    plan: InterleavePlan,
    start_ns: int,
    warm_up: Sequence[Cell],
) -> list[PlannedSlice]:
    """The whole schedule in time order (see the module docstring); `warm_up` cells make
    block 0, then each measured block visits the levels, and within a level the cells, in an
    order shuffled with the plan's seed."""
    rng = random.Random(plan.seed)
    slice_ns, gap_ns = round(plan.slice_s * 1e9), round(plan.gap_s * 1e9)
    settle_ns = round(plan.settle_s * 1e9)
    levels = sorted({c.users for c in cells})
    order: list[tuple[int, Cell]] = [(0, c) for c in warm_up]
    for block in range(1, plan.blocks + 1):
        shuffled = list(levels)
        rng.shuffle(shuffled)
        for users in shuffled:
            at = [c for c in cells if c.users == users]
            rng.shuffle(at)
            order += [(block, c) for c in at]
    out, t = [], start_ns
    for block, cell in order:
        out.append(PlannedSlice(cell, block, t, t + slice_ns, settle_ns))
        t += slice_ns + gap_ns
    return out


@dataclass
class SessionSeries:
    """One series of a session: how its points are planned (the highest level's plan stands
    for all), its Locust process, its server, and what went wrong."""

    plans: dict[int, PointPlan]
    """user count -> the point plan of that level (key, host, pinning, thresholds, ...)"""
    label: str
    health: Callable[[], str | None]
    running: RunningLocust | None = None
    failure: str | None = None
    wrk_url: str | None = None
    wrk_body: bytes = b""

    @property
    def top(self) -> PointPlan:
        return self.plans[max(self.plans)]


@dataclass
class _Observed:
    """What the harness saw around one measured slice."""

    slice: PlannedSlice
    mark_from: int = 0
    mark_to: int = 0
    scrape_before: str | None = None
    scrape_after: str | None = None
    reference: ReferenceSlice | None = None


@dataclass
class _Walk:
    observed: list[_Observed] = field(default_factory=list)
    memory_marks: list[int] = field(default_factory=list)


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.perf_counter_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def _scrape(url: str | None, before_ns: int) -> str | None:
    """The metrics page, if it can be read before `before_ns` (a slice's measured start, or
    the next slice): a scrape must never spill into what it would disturb."""
    timeout = min(SCRAPE_TIMEOUT_S, (before_ns - time.perf_counter_ns()) / 1e9)
    if url is None or timeout <= 0.01:
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text: str = response.read().decode("utf-8", "replace")
    except OSError as exc:
        log.warning(
            "cannot scrape %s in the gap between slices (%s): the slice is left out of its "
            "point's server-side breakdown; the other figures are unaffected",
            url,
            exc,
        )
        return None
    return text if time.perf_counter_ns() < before_ns else None


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@=" else "_" for c in label)


def _job(
    one: SessionSeries, folder: Path, records: Path, schedule: Path, run_for_s: float
) -> LocustJob:
    plan = one.top
    key = plan.key
    return LocustJob(
        users=key.concurrency,
        host=plan.host,
        out_dir=folder,
        records_dir=records,
        plan=None,
        timeout_s=plan.timeout_s,
        stop_grace_s=plan.stop_grace_s,
        user_class=user_class_name(key.wire),
        options={
            "--model": key.model,
            "--rows-per-request": str(key.rows_per_request),
            "--request-timeout": f"{plan.timeout_s:g}",
            **plan.load_options,
        },
        env={**plan.extra_env, "SERVINGBENCH_LOAD_SCHEDULE_FILE": str(schedule)},
        cpus=plan.generator_cpus,
        run_for_s=run_for_s,
    )


def _wait_ready(series: list[SessionSeries], schedules: list[Path]) -> None:
    """Until every live process has said it is ready; a process that exits or never says so
    fails its series."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = {i for i, s in enumerate(series) if s.running is not None}
    while waiting and time.monotonic() < deadline:
        for i in list(waiting):
            running = series[i].running
            assert running is not None
            if ready_path(schedules[i]).is_file():
                waiting.discard(i)
            elif running.proc.poll() is not None:
                series[i].failure = f"Locust exited before it was ready: {running.wait(0).log_tail}"
                waiting.discard(i)
        time.sleep(0.05)
    for i in waiting:
        series[i].failure = f"Locust was not ready within {READY_TIMEOUT_S:g} s"
        running = series[i].running
        if running is not None:
            running.kill()


def _walk(
    slices: list[PlannedSlice],
    series: list[SessionSeries],
    sampler: UsageSampler,
    generator_cpus: list[int] | None,
    progress: Progress,
    judge: SessionJudge | None = None,
) -> _Walk:
    """Follow the schedule beside the load: scrape in the gaps, sample at every measured
    slice's edges, run the wrk slices (see the module docstring); after each block, let
    `judge` cut the session short. Progress counts measured slices from the end of the warm-up
    block."""
    walk = _Walk()
    measured = [s for s in slices if s.block > 0]
    blocks = max((s.block for s in measured), default=0)
    half_gap = (measured[1].start_ns - measured[0].end_ns) // 2 if len(measured) > 1 else 0
    if measured:
        _sleep_until(measured[0].start_ns - half_gap)
    progress.begin(len(measured), "slices")
    cut_ns = 2**62
    for index, planned in enumerate(measured):
        if planned.start_ns >= cut_ns:
            break
        one = series[planned.cell.series]
        seen = _Observed(planned)
        wrk = planned.cell.client == "wrk"
        if one.failure is None and not wrk:
            _sleep_until(planned.start_ns - half_gap // 2)
            seen.scrape_before = _scrape(one.top.metrics_url, planned.start_ns)
        _sleep_until(planned.measured_from_ns)
        seen.mark_from = sampler.take()
        if wrk and one.wrk_url is not None:
            seen.reference = _wrk_slice(one, planned, generator_cpus)
        _sleep_until(planned.end_ns)
        seen.mark_to = sampler.take()
        if one.failure is None and not wrk:
            _sleep_until(planned.end_ns + half_gap)
            upcoming = measured[index + 1].start_ns if index + 1 < len(measured) else 2**62
            seen.scrape_after = _scrape(one.top.metrics_url, upcoming)
        walk.observed.append(seen)
        progress.advance()
        last_of_block = index + 1 == len(measured) or measured[index + 1].block != planned.block
        if last_of_block:
            walk.memory_marks.append(sampler.take(with_memory=True))
            if judge is not None and index + 1 < len(measured):
                cut_ns = judge(planned.block, measured[index + 1].start_ns) or cut_ns
            state = f"; {judge.state()}" if judge is not None and judge.state() else ""
            progress(f"{progress.position()} block {planned.block}/{blocks} measured{state}")
    return walk


def _wrk_slice(
    one: SessionSeries, planned: PlannedSlice, cpus: list[int] | None
) -> ReferenceSlice | None:
    seconds = (planned.end_ns - planned.measured_from_ns) / 1e9
    url = one.wrk_url
    assert url is not None
    where, _, path = url.removeprefix("http://").partition("/")
    try:
        figures = run_wrk(where, f"/{path}", one.wrk_body, seconds, cpus)
    except (RuntimeError, OSError) as exc:
        log.warning("wrk slice failed: %s", exc)
        return None
    if figures is None:
        return None
    return ReferenceSlice(block=planned.block, client="wrk", **figures)


def run_session(
    series: list[SessionSeries],
    levels: Sequence[int],
    plan: InterleavePlan,
    layout: RunLayout,
    tracked_servers: Sequence[Tracked],
    harness: Tracked | None,
    progress: Progress,
    deadline: float | None = None,
) -> list[PointResult]:
    """Run one interleaved session over `series` at `levels` users; one point per series and
    level, written into the run folder (see the module docstring).

    With `plan.ratio_precision`, `plan.blocks` is the least: more blocks are planned, as many
    as end by `deadline` (`time.monotonic`), and the session stops once decisive
    (`sweep.decisive`)."""
    started_at = _now()
    cells = [Cell(i, users) for i in range(len(series)) for users in levels]
    if shutil.which("wrk") is not None and 1 in levels:
        cells += [Cell(i, 1, "wrk") for i, s in enumerate(series) if s.wrk_url is not None]
    warm_up = [Cell(i, max(levels)) for i in range(len(series))]
    per_slice = plan.slice_s + plan.gap_s
    least = plan.blocks
    if plan.ratio_precision is not None and deadline is not None:
        room = deadline - time.monotonic() - START_LEAD_S - len(warm_up) * per_slice
        most = blocks_within(room, len(cells) * per_slice, least)
        plan = plan.model_copy(update={"blocks": most, "max_blocks": most})
    length_s = (len(warm_up) + plan.blocks * len(cells)) * per_slice
    for one in series:
        if one.failure is None:
            one.failure = one.health()
    with tempfile.TemporaryDirectory(prefix="servingbench-session-") as tmp:
        schedules = [Path(tmp) / f"schedule-{i}.json" for i in range(len(series))]
        for i, one in enumerate(series):
            if one.failure is None:
                folder = layout.root / "sessions" / _safe(one.label)  # its log and stats
                records = Path(tmp) / f"records-{i}"  # split into the points' own files
                job = _job(one, folder, records, schedules[i], READY_TIMEOUT_S + length_s)
                one.running = start_locust(job)
        try:
            _wait_ready(series, schedules)
            live = [c for c in cells if series[c.series].failure is None]
            start_ns = time.perf_counter_ns() + round(START_LEAD_S * 1e9)
            warm = [c for c in warm_up if series[c.series].failure is None]
            slices = session_slices(live, plan, start_ns, warm)
            for i, one in enumerate(series):
                if one.failure is None:
                    write_schedule(schedules[i], _orders(slices, i))
            progress(_session_text(len(live), plan, least, len(slices) * per_slice))
            tracked = [*_generators(series), *tracked_servers, *([harness] if harness else [])]
            sampler = UsageSampler(tracked)
            sampler.take(with_memory=True)
            judge = _judge(series, schedules, slices, plan, least)
            walk = _walk(slices, series, sampler, series[0].top.generator_cpus, progress, judge)
            measured_blocks = max((o.slice.block for o in walk.observed), default=plan.blocks)
            plan = plan.model_copy(update={"blocks": max(1, measured_blocks)})
            outcomes = {
                i: one.running.wait() for i, one in enumerate(series) if one.running is not None
            }
        finally:
            for one in series:
                if one.running is not None:
                    one.running.kill()
        results = []
        for i, one in enumerate(series):
            outcome = outcomes.get(i)
            read = read_generator(one.running.job.records_dir) if one.running else None
            if one.failure is None and read is None and outcome is not None:
                one.failure = (
                    f"Locust wrote no records (exit code {outcome.returncode}); last lines of "
                    f"its log:\n{outcome.log_tail}"
                )
            for users in levels:
                results.append(_point(one, users, read, walk, sampler, plan, layout, started_at, i))
    return results


def _session_text(cells: int, plan: InterleavePlan, least: int, length_s: float) -> str:
    text = f"interleaved session: {cells} cells x "
    if plan.max_blocks is None or plan.ratio_precision is None or plan.max_blocks == least:
        return text + f"{plan.blocks} blocks of {plan.slice_s:g} s slices, {length_s:.0f} s"
    return text + (
        f"{least} to {plan.max_blocks} blocks of {plan.slice_s:g} s slices, up to "
        f"{length_s:.0f} s (past {least}, until every headline req/s ratio is within "
        f"±{plan.ratio_precision * 100:g} %)"
    )


def _judge(
    series: list[SessionSeries],
    schedules: list[Path],
    slices: list[PlannedSlice],
    plan: InterleavePlan,
    least: int,
) -> SessionJudge | None:
    """The judge of a session that may stop once decisive (None for a fixed number of blocks)."""
    if plan.max_blocks is None or plan.ratio_precision is None or plan.max_blocks <= least:
        return None
    names = _short_names(series)
    own = {
        schedules[i]: [
            OwnSlice(names[i], s.cell.users, s.block)
            for s in slices
            if s.cell.series == i and s.cell.client == "locust"
        ]
        for i, one in enumerate(series)
        if one.failure is None
    }
    backend_of = {names[i]: one.top.key.backend for i, one in enumerate(series)}
    return SessionJudge(own, backend_of, plan.slice_s, plan.ratio_precision, least)


def _short_names(series: list[SessionSeries]) -> list[str]:
    """Each series by its scenario (and configuration, when not the default), for progress
    lines; the full labels where that would name two alike."""
    keys = [one.top.key for one in series]
    short = [
        k.scenario if k.server_config == "default" else f"{k.scenario}:{k.server_config}"
        for k in keys
    ]
    return short if len(set(short)) == len(short) else [one.label for one in series]


def _orders(slices: list[PlannedSlice], index: int) -> list[SliceOrder]:
    """Process `index`'s own Locust slices."""
    return [
        SliceOrder(s.start_ns, s.end_ns, s.cell.users)
        for s in slices
        if s.cell.series == index and s.cell.client == "locust"
    ]


def _generators(series: list[SessionSeries]) -> list[Tracked]:
    """Each series' Locust process, tracked under the series' label."""

    def roots(pid: int) -> Callable[[], list[psutil.Process]]:
        proc = psutil.Process(pid)
        return lambda: [proc]

    return [
        Tracked("generator", one.label, roots(one.running.pid), one.top.generator_cpus)
        for one in series
        if one.running is not None
    ]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _point(
    one: SessionSeries,
    users: int,
    read: tuple[GeneratorReport, RequestRecords, dict[str, str]] | None,
    walk: _Walk,
    sampler: UsageSampler,
    plan: InterleavePlan,
    layout: RunLayout,
    started_at: str,
    index: int,
) -> PointResult:
    """The point of `one` at `users`: its slices' records, figures, CPU and flags."""
    point_plan = one.plans[users]
    folder = layout.point_dir(point_plan.point_id)
    folder.mkdir(parents=True, exist_ok=False)
    base = _base(point_plan, plan, started_at)
    if one.failure is not None or read is None:
        return _failed(base, folder, one.failure or "no records")
    report, records, _ = read
    t0 = report.t0_ns or 0
    mine = [
        o for o in walk.observed
        if o.slice.cell.series == index and o.slice.cell.users == users
        and o.slice.cell.client == "locust"
    ]  # fmt: skip
    references = [
        o.reference for o in walk.observed
        if o.slice.cell.series == index and o.reference is not None and users == 1
    ]  # fmt: skip
    first = min(o.slice.start_ns for o in mine)
    absolute = replace(
        records,
        start_ns=records.start_ns + t0,
        intended_ns=records.intended_ns + t0,
    )
    inside = np.zeros(len(absolute), dtype=bool)
    for o in mine:
        inside |= (absolute.start_ns >= o.slice.start_ns) & (absolute.start_ns < o.slice.end_ns)
    spans = np.asarray([[o.slice.measured_from_ns, o.slice.end_ns] for o in mine], dtype=np.int64)
    point_records = RequestRecords.concat(
        [absolute.select(inside)], first, int(spans[:, 0].min()), int(spans[:, 1].max())
    )
    point_records.slices = spans - first
    if not point_records.measured_mask.any():
        return _failed(
            base,
            folder,
            f"no request started in the measured part of its {len(mine)} slice(s) of "
            f"{plan.slice_s:g} s: every user was still waiting on an earlier request (a server "
            "slower than a slice, or one that stopped answering); a longer --slice may help",
        )
    point_records.save(folder / RECORDS_FILE)
    slices = [_slice_result(o, one, sampler, first) for o in mine]
    summary = summarize(point_records)
    usage = _usage(one, mine, sampler, walk)
    interference = _interference(one, mine, sampler, usage)
    inputs = FlagInputs(
        summary,
        None,  # interleaved points have no stopping rule to converge
        usage,
        interference,
        None,
        _added(point_plan, slices),
    )
    flags, reasons = point_flags(inputs, point_plan.thresholds)
    timing = _timing(point_plan, mine, point_records)
    result = PointResult.model_validate(
        base
        | {
            "status": "ok",
            "flags": flags,
            "flag_reasons": reasons,
            "measured_s": point_records.duration_s,
            "summary": summary,
            "usage": usage,
            "interference": interference,
            "errors_by_outcome": outcome_counts(point_records),
            "locust_rps": read_locust_rps(one.running.job.stats_path) if one.running else None,
            "slices": slices,
            "references": references,
            "server_timing": timing,
            "generator": GeneratorReport(
                t0_ns=first,
                from_ns=int(spans[:, 0].min()),
                to_ns=int(spans[:, 1].max()),
                stop_reason="schedule",
                windows=0,
                workers=report.workers,
                timed_connects=report.timed_connects,
            ),
        }
    )
    result.write(folder / POINT_FILE)
    return result


def _failed(base: dict[str, object], folder: Path, reason: str) -> PointResult:
    """A point of the session without figures, and why (no records file: nothing to read)."""
    result = PointResult.model_validate(
        base | {"status": "failed", "failure_reason": reason, "flags": ["failed"],
                "flag_reasons": {"failed": reason.splitlines()[0]}}
    )  # fmt: skip
    result.write(folder / POINT_FILE)
    return result


def _base(point_plan: PointPlan, plan: InterleavePlan, started_at: str) -> dict[str, object]:
    return {
        "point_id": point_plan.point_id,
        "key": point_plan.key,
        "host": point_plan.host,
        "server_name": point_plan.server_name,
        "started_at": started_at,
        "finished_at": _now(),
        "method": "interleaved",
        "interleave": plan,
        "timeout_s": point_plan.timeout_s,
        "generator_processes": 1,
        "pinning": {"server": point_plan.server_cpus, "generator": point_plan.generator_cpus},
    }


def _sampled(seen: _Observed) -> bool:
    """Whether the harness sampled the slice's edges on time (it shares a core with the
    server, and a late wake-up would leave a sliver between its two samples)."""
    planned = seen.slice
    measured_ns = planned.end_ns - planned.measured_from_ns
    return seen.mark_to - seen.mark_from >= 0.8 * measured_ns


def _slice_result(
    seen: _Observed, one: SessionSeries, sampler: UsageSampler, first: int
) -> SliceResult:
    if not _sampled(seen):
        return SliceResult(
            block=seen.slice.block,
            from_ns=seen.slice.measured_from_ns - first,
            to_ns=seen.slice.end_ns - first,
        )
    usage = sampler.usage(seen.mark_from, seen.mark_to)
    server = [u for u in usage if u.role == "server" and u.name == one.top.server_name]
    generator = [u for u in usage if u.role == "generator" and u.name == one.label]
    interference = sampler.interference(
        seen.mark_from, seen.mark_to, usage, one.top.server_cpus, one.top.generator_cpus,
        one.top.server_name,
    )  # fmt: skip
    return SliceResult(
        block=seen.slice.block,
        from_ns=seen.slice.measured_from_ns - first,
        to_ns=seen.slice.end_ns - first,
        server_cpu_s=server[0].cpu_seconds if server else None,
        generator_busiest_percent=generator[0].busiest_process_percent if generator else None,
        server_other_percent=interference.server_other_percent,
        generator_other_percent=interference.generator_other_percent,
    )


def _usage(
    one: SessionSeries, mine: list[_Observed], sampler: UsageSampler, walk: _Walk
) -> list[ProcessUsage]:
    """The server's and the Locust process's usage summed over the point's slices (CPU % over
    the measured time), with the peak memory seen at the block ends."""
    out = []
    for role, name in (("server", one.top.server_name), ("generator", one.label)):
        sampled = [o for o in mine if _sampled(o)]
        parts = [
            u
            for o in sampled
            for u in sampler.usage(o.mark_from, o.mark_to)
            if u.role == role and u.name == name
        ]
        if not parts:
            continue
        seconds = sum(u.cpu_seconds for u in parts)
        elapsed = sum((o.mark_to - o.mark_from) / 1e9 for o in sampled)
        memory = [
            u
            for a, b in zip(walk.memory_marks, walk.memory_marks[1:], strict=False)
            for u in sampler.usage(a, b)
            if u.role == role and u.name == name
        ]
        out.append(
            parts[0].model_copy(
                update={
                    "cpu_seconds": seconds,
                    "cpu_percent": 100 * seconds / elapsed if elapsed > 0 else 0.0,
                    "busiest_process_percent": max(u.busiest_process_percent for u in parts),
                    "rss_bytes": max((u.rss_bytes for u in memory), default=0),
                    "pss_bytes": max((u.pss_bytes for u in memory), default=0),
                    "uss_bytes": max((u.uss_bytes for u in memory), default=0),
                }
            )
        )
    return out


def _interference(
    one: SessionSeries, mine: list[_Observed], sampler: UsageSampler, usage: list[ProcessUsage]
) -> Interference:
    """Other processes' CPU on our cores over the point's slices (time-weighted)."""
    server, generator, idle, total = 0.0, 0.0, 0.0, 0.0
    known = False
    for o in (o for o in mine if _sampled(o)):
        elapsed = (o.mark_to - o.mark_from) / 1e9
        each = sampler.usage(o.mark_from, o.mark_to)
        found = sampler.interference(
            o.mark_from, o.mark_to, each, one.top.server_cpus, one.top.generator_cpus,
            one.top.server_name,
        )  # fmt: skip
        if found.server_other_percent is not None:
            known = True
            server += found.server_other_percent * elapsed
        generator += (found.generator_other_percent or 0.0) * elapsed
        idle += found.idle_servers_percent * elapsed
        total += elapsed

    def share(value: float) -> float:
        return value / total if total > 0 else math.nan

    return Interference(
        server_cores=one.top.server_cpus,
        generator_cores=one.top.generator_cpus,
        server_other_percent=share(server) if known else None,
        generator_other_percent=share(generator) if one.top.generator_cpus else None,
        idle_servers_percent=share(idle),
    )


def _added(point_plan: PointPlan, slices: list[SliceResult]) -> float | None:
    """The latency the generator adds at this point's load (calibration, by its CPU)."""
    calibration: CalibrationRecord | None = point_plan.calibration
    key = point_plan.key
    if calibration is None or calibration.mismatch(key.model, key.rows_per_request):
        return None
    busiest = [s.generator_busiest_percent for s in slices if s.generator_busiest_percent]
    cpu = float(np.median(busiest)) if busiest else 0.0
    return calibration.added_latency_ms(key.wire, cpu, key.concurrency)


def _timing(
    point_plan: PointPlan, mine: list[_Observed], records: RequestRecords
) -> ServerTiming | None:
    """The server's stages over the point's slices (a scrape pair framing each), and its
    per-request header times."""
    measured = records.measured()
    header = measured.server_ns[(measured.server_ns >= 0) & measured.ok] / 1e6
    timing = ServerTiming()
    if header.size:
        timing.header_mean_ms = float(header.mean())
        timing.header_p50_ms, timing.header_p99_ms = (
            float(v) for v in np.percentile(header, (50, 99))
        )
    pairs = [
        (o.scrape_before, o.scrape_after)
        for o in mine
        if o.scrape_before is not None and o.scrape_after is not None
    ]
    key = point_plan.key
    if point_plan.metrics_url is None:
        timing.problem = "no metrics endpoint"
    elif not pairs:
        timing.problem = f"the metrics at {point_plan.metrics_url} could not be read"
    else:
        timing.stages = stages_over(pairs, point_plan.stage_metrics, key.wire, key.model)
    if not timing.stages and timing.header_mean_ms is None:
        return None if point_plan.metrics_url is None else timing
    return timing


def wrk_target(point_plan: PointPlan) -> tuple[str, bytes] | None:
    """(URL, body) for wrk slices of an HTTP series, or None for gRPC (wrk speaks HTTP)."""
    key = point_plan.key
    wire = get_wire(key.wire)
    if wire.transport != "http" or not point_plan.host.startswith("http://"):
        return None
    body = build_payloads(wire.name, key.model, key.rows_per_request)[0].body
    return f"{point_plan.host}{wire.path(key.model)}", body
