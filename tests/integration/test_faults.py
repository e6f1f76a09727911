"""The harness stays honest under faults injected into our real FastAPI server.

Faults are signals to the real server process tree (SIGSTOP / SIGCONT) and to real Locust
worker processes (SIGKILL); sweeps run programmatically (`run_sweep`) against the session's
server as a `--target`, so no server starts here and the server's pid is known. Points are
short (0.5 s warm-up, 1 s windows) to keep the file's run time down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import pytest

from servingbench.runs.point import GeneratorReport, PointResult
from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.stats import LatencySummary
from servingbench.stack.launch import Launched
from servingbench.stack.processes import free_port
from servingbench.sweep import runner
from servingbench.sweep.runner import SweepResult, run_sweep
from servingbench.sweep.settings import load_settings
from tests.integration.faults import (
    Freezer,
    LoadWatch,
    Staller,
    locust_children,
    remote_workers,
    served_requests,
)

pytestmark = pytest.mark.integration

SCENARIO = "fastapi-rest"
WARMUP_S = 0.5
SCRAPE_TIMEOUT_S = 2.0  # the controller's metrics scrape (loadgen.hooks._scrape)
SHIP_INTERVAL_S = 0.5  # loadgen.collect.RecordShipper: a worker ships its records this often


@pytest.fixture(autouse=True)
def _no_model_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep's in-process model-cost step (a subprocess of ~8 s here) measures nothing
    these tests look at."""
    monkeypatch.setattr(runner, "_model_costs", lambda settings, progress: [])


def _url(server: Launched) -> str:
    return f"http://127.0.0.1:{server.spec.ports['http']}"


def _sweep(
    server: Launched, tmp_path: Path, run_id: str, scrape: bool = False, **overrides: Any
) -> tuple[SweepResult, list[int]]:
    """One sweep against `server` as a target; returns it and when each point ended."""
    url = _url(server)
    values: dict[str, Any] = {
        "targets": {SCENARIO: url},
        "metrics_urls": {SCENARIO: f"{url}/metrics"} if scrape else {},
        "models": ["breast-cancer"],
        "method": "points",  # the stopping rule's faults; interleaved sessions have none
        "repeats": 1,
        "warmup_s": WARMUP_S,
        "window_s": 1.0,
        "results_dir": tmp_path,
        "run_id": run_id,
        **overrides,
    }
    ended: list[int] = []

    def after(point: PointResult, servers: object) -> None:
        ended.append(perf_counter_ns())

    result = run_sweep(load_settings(overrides=values), progress=print, after_point=after)
    return result, ended


@dataclass(frozen=True)
class Measured:
    """A sweep's one point, which ran: its records, summary, generator report and interval
    (absolute ns on the generator's clock, perf_counter_ns: this process's too)."""

    point: PointResult
    records: RequestRecords
    summary: LatencySummary
    generator: GeneratorReport
    t0_ns: int
    from_ns: int
    to_ns: int


def _measured(result: SweepResult) -> Measured:
    (point,) = result.points
    assert point.status == "ok", point.failure_reason
    summary, generator = point.summary, point.generator
    assert summary is not None
    assert generator is not None
    t0, from_ns, to_ns = generator.t0_ns, generator.from_ns, generator.to_ns
    assert t0 is not None
    assert from_ns is not None
    assert to_ns is not None
    records = RequestRecords.load(result.layout.point_dir(point.point_id) / "requests.npz")
    return Measured(point, records, summary, generator, t0, from_ns, to_ns)


# --- 1. a server that hangs at the end of a point --------------------------------------------

SETTLE_S = 0.3  # MeasurePlan.settle_s: the controller's wait after a window's end
STUCK_PROBE_S = 0.6
"""When, after the hang began, every user must be waiting on a request the server will never
answer: later than a busy machine's generator takes to send its users' next requests (the
hang can find them all between two requests), earlier than the first of them times out."""
EXIT_SLACK_S = 4.0
"""From the end of the stop's grace to `measure_point`'s return: Locust writes the records
and exits, the sweep reads and summarises them (about 1 s here; the margin is for a busy
machine). A stop that waited on the hung requests would take the `-t` safety net instead, 10 s
beyond the cap, then up to 30 s more."""


@pytest.mark.parametrize(
    ("variant", "timeout", "grace", "before_end", "cap", "ends_as"),
    [
        # metrics scraped, as for every server the sweep starts: requests in flight at the
        # hang run into their timeout, and so do the retries sent before the interval ends
        ("scraped", 1.0, 1.0, 2.0, 3.0, Outcome.TIMEOUT),
        # a timeout longer than what is left: the stop's grace period ends them, INCOMPLETE
        # (1 s of grace ends 1.3 s after the interval, the timeout 2 s after)
        ("grace", 3.5, 1.0, 1.5, 4.0, Outcome.INCOMPLETE),
    ],
)
def test_hang_at_the_end_of_a_point_is_bounded_and_flagged(
    api_server: Launched,
    tmp_path: Path,
    variant: str,
    timeout: float,
    grace: float,
    before_end: float,
    cap: float,
    ends_as: Outcome,
) -> None:
    """A server that stops answering near the end must neither stretch the point (the stop's
    grace bounds it) nor lose the requests it swallowed (recorded as failures), and the point
    is flagged with the collapse visible in its windows."""
    users = 8
    scraped = variant == "scraped"
    freezer = Freezer(api_server.handle.pid)
    watch = LoadWatch(_url(api_server), freezer.freeze, delay_s=WARMUP_S + cap - before_end)
    with freezer, watch:  # the server is resumed when this block ends, whatever happens
        result, ended = _sweep(
            api_server,
            tmp_path,
            variant,
            scrape=scraped,
            concurrency=[users],
            max_duration_s=cap,
            stability={"windows": round(cap)},  # the hang keeps them apart: the point caps
            timeout_s=timeout,
            stop_grace_s=grace,
        )
        assert freezer.stopped(), "the server was resumed before the point ended"
    assert not freezer.stopped()
    assert watch.error is None, watch.error
    assert freezer.frozen_ns is not None, "the server was never stopped"

    run = _measured(result)
    point, records = run.point, run.records
    assert point.stop_reason == "cap"  # the controller ended it, not Locust's -t safety net
    t0 = run.t0_ns
    stop = freezer.frozen_ns - t0
    left_s = (records.to_ns - stop) / 1e9
    assert before_end - 0.5 < left_s < before_end + 0.5, f"the hang began {left_s:.2f} s early"

    # bounded: the measured span ends at the controller's window boundary, not at the last
    # answer; after it only the settle, a scrape that times out and the stop's grace period
    assert records.to_ns - records.from_ns == round(cap * 1e9)
    assert records.done_ns.max() > records.to_ns  # the hung requests ended after it
    scrape = SCRAPE_TIMEOUT_S if scraped else 0.0
    after_end_s = (ended[0] - run.to_ns) / 1e9
    assert after_end_s < SETTLE_S + scrape + grace + EXIT_SLACK_S, after_end_s

    # no request vanished: every user was stuck in one recorded request once the server hung,
    # and each of those ends as the hang makes it end. Whether a user's stuck request was sent
    # before the hang (in flight, unanswered) or just after it (the user had its answer) is the
    # machine's timing; either way the frozen server never answered it.
    probe = stop + round(STUCK_PROBE_S * 1e9)
    stuck = (records.start_ns <= probe) & (records.done_ns > probe)
    assert int(stuck.sum()) == users, records.outcome[stuck]
    assert set(records.outcome[stuck].tolist()) == {int(ends_as)}, records.outcome[stuck]
    after_hang = records.start_ns > stop
    assert not (records.ok & after_hang).any(), "an answer from a stopped server"
    measured = records.measured_mask
    assert (measured & (records.outcome == ends_as)).sum() >= users

    # flagged with its reason, and the collapse shows in the windows, not averaged away
    flag = "errors" if ends_as is Outcome.TIMEOUT else "incomplete"
    assert flag in point.flags, point.flags
    assert "request" in point.flag_reasons[flag]
    assert run.summary.error_rate > 0
    assert point.errors_by_outcome.get(ends_as.label, 0) >= users
    # a whole window after the hang holds at most a failure or two per user
    after = [w for w in point.windows if w.start_s * 1e9 >= stop]
    assert after, (stop, point.windows)
    assert all(w.requests <= 2 * users for w in after), point.windows
    assert point.windows[0].requests > 10 * users, point.windows


@pytest.mark.timeout(180)
def test_an_interleaved_point_without_a_request_fails_with_its_reason(
    api_server: Launched, tmp_path: Path
) -> None:
    """Frozen from the warm-up slice on, the server holds each user's request past the session
    (its timeout is longer): no request starts in a measured slice, so the point has no figure.
    It must say so, `failed` with the reason, not stand as an `ok` point with an empty row."""
    freezer = Freezer(api_server.handle.pid)
    watch = LoadWatch(_url(api_server), freezer.freeze)
    with freezer, watch:  # the server is resumed when this block ends, whatever happens
        result, _ = _sweep(
            api_server,
            tmp_path,
            "frozen",
            method="interleaved",
            concurrency=[2],
            blocks=2,
            window_s=4.0,  # room for a 10 s timeout (shorter than 3 windows), past the session
            max_duration_s=12.0,
            timeout_s=10.0,
            stop_grace_s=1.0,
        )
    assert watch.error is None, watch.error
    assert freezer.frozen_ns is not None, "the server was never stopped"
    (point,) = result.points
    assert point.status == "failed", point.flags
    assert point.flags == ["failed"]
    assert point.failure_reason is not None
    assert "no request started in the measured part of its 2 slice(s)" in point.failure_reason
    assert not (result.layout.point_dir(point.point_id) / "requests.npz").exists()


# --- 2. open loop against a server that stalls 200 ms every second ---------------------------

STALL_S, PERIOD_S = 0.2, 1.0
STALL_WINDOWS = 3


def _stalled_point(
    server: Launched, tmp_path: Path, run_id: str, **load: Any
) -> tuple[Measured, list[tuple[int, int]]]:
    """A point against `server` frozen STALL_S of every PERIOD_S from its first request on,
    and the stalls (absolute ns, the records' clock)."""
    staller = Staller(server.handle.pid, PERIOD_S, STALL_S)
    watch = LoadWatch(_url(server), staller.start)
    try:
        with watch:
            result, _ = _sweep(
                server,
                tmp_path,
                run_id,
                max_duration_s=float(STALL_WINDOWS),
                stability={"windows": STALL_WINDOWS},
                timeout_s=2.0,
                stop_grace_s=1.0,
                **load,
            )
    finally:
        staller.stop()
    assert watch.error is None, watch.error
    return _measured(result), staller.stalls


def _held_up(run: Measured, stalls: list[tuple[int, int]], since: str) -> tuple[int, int]:
    """(measured requests that took half a stall or more, counted from their `since` start;
    stalls wholly inside the measured interval, each checked to have lasted STALL_S)."""
    measured = run.records.measured()
    took = measured.response_ns if since == "intended" else measured.latency_ns
    held = int((measured.ok & (took >= round(STALL_S / 2 * 1e9))).sum())
    inside = [(b - a) / 1e9 for a, b in stalls if run.from_ns <= a and b <= run.to_ns]
    assert all(length >= STALL_S for length in inside), inside
    return held, len(inside)


def test_open_loop_sees_the_stalls_a_closed_loop_hides(
    api_server: Launched, tmp_path: Path
) -> None:
    """Coordinated omission: a closed loop stops sending while the server stalls, so a stall
    delays one recorded request per user; an open loop keeps its schedule, every arrival during
    a stall waits, and the response time (from the intended start) shows the stall at p99."""
    rate, stall_ms = 200.0, STALL_S * 1e3
    run, stalls = _stalled_point(
        api_server, tmp_path, "open", load="open", rates=[rate], arrivals="constant"
    )
    # open loop: each stall holds up the arrivals of its first half by half a stall or more
    held, inside = _held_up(run, stalls, "intended")
    assert inside >= STALL_WINDOWS - 1, stalls
    assert not run.summary.dropped, "the in-flight cap was reached: raise it"
    assert held >= 0.5 * inside * rate * STALL_S / 2, (held, inside)
    # ... so the p99 of response time is at least about a stall
    assert run.summary.p99_ms >= 0.8 * stall_ms, run.summary
    # The generator kept its schedule through the stalls (small lateness): it sent into the
    # frozen server's socket buffers, so the wait is the server's and shows in the service
    # time (from the actual send) too. Arrivals that find no free slot are dropped, never sent
    # late, so the service time cannot hide a stall the way a closed loop does.
    assert run.summary.lateness_p99_ms < 0.25 * stall_ms, run.summary
    assert run.summary.service_p99_ms >= 0.8 * stall_ms, run.summary

    # closed loop at 1 user: a stall holds up the one request in flight, not every arrival
    # (-1: a stall at the interval's edge; +2: a busy machine's own hiccups) ...
    run, stalls = _stalled_point(api_server, tmp_path, "closed", concurrency=[1])
    held, inside = _held_up(run, stalls, "sent")
    assert inside - 1 <= held <= len(stalls) + 2, (held, stalls)
    # ... a few in hundreds of requests: p99 stays well below the stalls it lived through
    assert run.summary.p99_ms < 0.5 * stall_ms, run.summary


# --- 3. distributed generation ----------------------------------------------------------------

WORKER_USERS = 4
WORKER_WINDOWS = 2
WORKER_POINT: dict[str, Any] = {
    "concurrency": [WORKER_USERS],
    "max_duration_s": float(WORKER_WINDOWS),
    "stability": {"windows": WORKER_WINDOWS},
    "timeout_s": 1.0,
    "stop_grace_s": 1.0,
}


def _served_since(watch: LoadWatch) -> int:
    """Inference requests the server answered since the point's Locust started."""
    assert watch.error is None, watch.error
    assert watch.baseline is not None, "the point's load never reached the server"
    return served_requests(watch.base_url) - watch.baseline


def _check_workers(run: Measured, served: int, lost: int) -> None:
    """Both workers reported, their counts add up to the merged records, `lost` of them (0 or
    1) are reported lost, and the others' shares arrived whole. Every recorded request reached
    the server and, with no worker lost, every one it answered is recorded: at most one per
    user differs (in flight when the stop's grace ended)."""
    workers = run.generator.workers
    assert len({w.node for w in workers}) == 2, workers
    assert all(w.records > 0 for w in workers), workers
    assert sum(w.records for w in workers) == len(run.records)
    assert sum(w.lost for w in workers) == lost, workers
    for w in workers:
        assert w.lost or (w.records, w.chunks) == (w.declared_records, w.declared_chunks), w
    assert len(run.records) <= served + WORKER_USERS, (len(run.records), served)
    if not lost:
        assert len(run.records) >= served - WORKER_USERS, (len(run.records), served)


@pytest.mark.parametrize("where", ["local", "remote"])
def test_worker_records_all_reach_the_master(
    api_server: Launched, tmp_path: Path, where: str
) -> None:
    """With 2 worker processes, forked here or joining as `servingbench worker` from their own
    folders, the merged records hold every request the workers sent: the server's own count of
    what it answered agrees, and each worker's share arrived whole."""
    folders = [tmp_path / f"worker{i}" for i in range(2)] if where == "remote" else []
    port = free_port()
    distributed = (
        {"remote_workers": 2, "master_bind": "127.0.0.1", "master_port": port}
        if where == "remote"
        else {"generator_workers": 2}
    )
    watch = LoadWatch(_url(api_server))
    with remote_workers(folders, port) as workers, watch:
        result, _ = _sweep(api_server, tmp_path, where, **WORKER_POINT, **distributed)
    served = _served_since(watch)
    run = _measured(result)
    assert run.point.stop_reason in ("converged", "cap")
    assert "worker-lost" not in run.point.flags, run.point.flag_reasons
    assert run.point.generator_processes == 2
    _check_workers(run, served, lost=0)
    assert [w.returncode for w in workers] == [0] * len(folders)
    for folder in folders:  # records travel over Locust's messaging, never through a disk
        assert not list(folder.rglob("*.npz")), list(folder.iterdir())


def test_killed_worker_flags_the_point(api_server: Launched, tmp_path: Path) -> None:
    """A worker killed mid-point: the point still runs its measured interval with the other
    worker, keeps the records that arrived, and says which worker was lost instead of passing
    off the thinner load as the planned one."""
    killed: list[int] = []

    def kill_one() -> None:
        (master,) = locust_children()
        master.children()[0].kill()  # SIGKILL: no last records, no goodbye
        killed.append(perf_counter_ns())

    watch = LoadWatch(_url(api_server), kill_one, delay_s=WARMUP_S + 0.5)
    with watch:
        result, _ = _sweep(api_server, tmp_path, "killed", generator_workers=2, **WORKER_POINT)
    served = _served_since(watch)
    assert killed, "no worker was killed"
    run = _measured(result)
    assert run.from_ns < killed[0] < run.to_ns, "not killed mid-point"

    # not shortened: the controller ran the planned windows, not a stop at the loss
    assert run.point.stop_reason in ("converged", "cap")
    assert len(run.point.windows) == WORKER_WINDOWS, run.point.windows
    assert run.point.windows[-1].requests > 0, run.point.windows  # the other worker went on

    # flagged, naming the lost worker and why
    assert "worker-lost" in run.point.flags, run.point.flags
    _check_workers(run, served, lost=1)
    (lost,) = [w for w in run.generator.workers if w.lost]
    assert lost.reason
    assert lost.node in run.point.flag_reasons["worker-lost"]
    assert lost.reason in run.point.flag_reasons["worker-lost"]
    # what it sent before the kill is kept; at most its last, unshipped records are missing
    ran_s = (killed[0] - run.t0_ns) / 1e9
    unshipped = lost.records / ran_s * 2 * SHIP_INTERVAL_S  # twice: a busy machine
    assert served - len(run.records) <= unshipped + WORKER_USERS, (served, len(run.records))
