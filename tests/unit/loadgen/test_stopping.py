"""A point ends when its windows agree or at the cap; warm-up is never judged.

The controller runs on real gevent time with short windows. Records are laid out in advance on
the same clock (their completion times may lie in the future), so which request falls in which
window is fixed by the test, not by how promptly the controller wakes up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter_ns

import gevent
import numpy as np
import pytest

from servingbench.loadgen.stopping import PointController, WindowAccumulator
from servingbench.runs.records import UNKNOWN_NS, Outcome, RequestRecords
from servingbench.runs.stats import MeasurePlan, Stability, windows

MS = 1_000_000
STEP = 50 * MS
"""The default plan's warm-up and window."""


def _records(
    done_ns: Sequence[int], latency_ns: Sequence[int], outcome: Sequence[Outcome] | None = None
) -> RequestRecords:
    done = np.asarray(done_ns, dtype=np.int64)
    latency = np.asarray(latency_ns, dtype=np.int64)
    start = done - latency
    return RequestRecords(
        start_ns=start,
        latency_ns=latency,
        outcome=np.asarray(outcome or [Outcome.OK] * len(done), dtype=np.int8),
        intended_ns=start.copy(),
        server_ns=np.full(len(done), UNKNOWN_NS, dtype=np.int64),
        from_ns=0,
        to_ns=0,
    )


def _steady(
    t0: int, from_ns: int, step: int, n_windows: int, per_window: Sequence[int]
) -> RequestRecords:
    """A slow warm-up (100 ms each, started at t0, finishing before `from_ns`), then windows with
    `per_window[i % len]` requests of 1 ms each, evenly spread inside window i."""
    done = [t0 + k * (from_ns - t0) // 5 for k in range(1, 5)]
    latency = [min(100 * MS, d - t0) for d in done]
    for i in range(n_windows):
        count = per_window[i % len(per_window)]
        lo = from_ns + i * step
        done += [lo + (j + 1) * step // (count + 1) for j in range(count)]
        latency += [MS] * count
    return _records(done, latency)


class _Harness:
    """The controller's three callbacks over a fixed set of records; counts the stops."""

    def __init__(self, records: RequestRecords | None) -> None:
        self.records = records
        self.stops = 0

    def first_start_ns(self) -> int | None:
        if self.records is None or not len(self.records):
            return None
        return int(self.records.start_ns.min())

    def backlog(self) -> RequestRecords:
        return self.records if self.records is not None else _records([], [])

    def stop_test(self) -> None:
        self.stops += 1


def _plan(**kwargs: float | bool | Stability) -> MeasurePlan:
    values: dict[str, object] = {
        "warmup_s": STEP / 1e9,
        "window_s": STEP / 1e9,
        "settle_s": 0.0,
        "max_duration_s": 0.25,
        # windows of tens of requests: what these tests need of the sample-count guard
        "stability": Stability(min_window_ok=10, min_point_ok=30),
    }
    values.update(kwargs)
    return MeasurePlan.model_validate(values)


@dataclass
class _Point:
    t0: int
    records: RequestRecords
    harness: _Harness
    controller: PointController


def _point(
    per_window: Sequence[int] = (40,),
    plan: MeasurePlan | None = None,
    scrape: Callable[[], str | None] | None = None,
    step: int = STEP,
    n_windows: int = 8,
) -> _Point:
    """A controller over steady records laid out from now: warm-up, then `n_windows` windows."""
    plan = plan or _plan()
    t0 = perf_counter_ns()
    records = _steady(t0, t0 + round(plan.warmup_s * 1e9), step, n_windows, per_window)
    harness = _Harness(records)
    controller = PointController(
        plan, harness.first_start_ns, harness.backlog, harness.stop_test, scrape
    )
    return _Point(t0, records, harness, controller)


def _run(controller: PointController, timeout_s: float = 10.0) -> None:
    """Start the controller and wait for it to end the point by itself."""
    controller.start()
    greenlet = controller._greenlet
    assert greenlet is not None
    greenlet.join(timeout=timeout_s)
    assert greenlet.dead, "the controller did not finish in time"


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = perf_counter_ns() + round(timeout_s * 1e9)
    while not condition():
        assert perf_counter_ns() < deadline, "timed out waiting for the controller"
        gevent.sleep(0.005)


def test_steady_windows_converge_after_the_rule_s_count() -> None:
    point = _point()
    controller = point.controller
    undecided = controller.converged
    _run(controller)
    assert (undecided, controller.reason, controller.converged) == (None, "converged", True)
    from_ns = point.t0 + STEP
    assert (controller.t0_ns, controller.from_ns) == (point.t0, from_ns)
    assert len(controller.windows) == controller.plan.stability.windows == 3
    assert controller.to_ns == from_ns + 3 * STEP
    assert point.harness.stops == 1
    assert [w.requests for w in controller.windows] == [40, 40, 40]
    assert [w.p50_ms for w in controller.windows] == [1.0, 1.0, 1.0]  # warm-up's 100 ms left out


def test_unstable_windows_run_to_the_cap() -> None:
    """Throughput swinging 10 <-> 40 a window never agrees: the cap ends the point."""
    point = _point([10, 40])
    controller = point.controller
    _run(controller)
    assert (controller.reason, controller.converged) == ("cap", False)
    assert len(controller.windows) == 5  # 0.25 s cap / 0.05 s windows
    assert controller.to_ns == point.t0 + STEP + 5 * STEP
    assert [w.requests for w in controller.windows] == [10, 40, 10, 40, 10]
    assert point.harness.stops == 1


def test_until_stable_off_always_runs_to_the_cap() -> None:
    controller = _point(plan=_plan(until_stable=False, max_duration_s=0.2)).controller
    _run(controller)
    assert (controller.reason, len(controller.windows)) == ("cap", 4)


def test_windows_fill_from_chunks_that_arrive_later() -> None:
    """Records shipped after the interval is known reach the windows through `on_chunk`."""
    point = _point([20])
    records, controller = point.records, point.controller
    point.harness.records = _records([point.t0 + MS], [MS])  # only the first one is known
    controller.start()
    _wait_for(lambda: controller.accumulator is not None)
    controller.on_chunk(records.select(np.arange(len(records)) % 2 == 0))  # in two pieces
    controller.on_chunk(records.select(np.arange(len(records)) % 2 == 1))
    _wait_for(lambda: controller.reason is not None)
    assert controller.reason == "converged"
    assert [w.requests for w in controller.windows] == [20, 20, 20]


def test_no_request_at_all() -> None:
    harness = _Harness(None)
    controller = PointController(
        _plan(), harness.first_start_ns, harness.backlog, harness.stop_test
    )
    controller.start()
    gevent.sleep(0.1)
    controller.stopped(perf_counter_ns())
    assert (controller.reason, controller.converged) == ("no-requests", False)
    assert (controller.from_ns, controller.to_ns) == (None, None)
    assert harness.stops == 0
    gevent.sleep(0.01)  # the kill is delivered at the next switch
    assert controller._greenlet is not None
    assert controller._greenlet.dead


def test_stopped_by_locust_mid_point_keeps_what_was_measured() -> None:
    """`-t` or Ctrl-C before the rule decided: the interval ends at the stop."""
    plan = _plan(window_s=0.5, max_duration_s=10.0)  # long windows: the stop comes first
    point = _point([10], plan, step=500 * MS, n_windows=2)
    controller = point.controller
    controller.start()
    _wait_for(lambda: controller.from_ns is not None)
    assert controller.from_ns is not None
    now = perf_counter_ns()
    controller.stopped(now)
    assert controller.reason == "stopped"
    assert controller.to_ns == max(now, controller.from_ns)
    assert controller.windows == []
    assert point.harness.stops == 0


def test_a_stop_after_the_decision_changes_nothing() -> None:
    controller = _point().controller
    _run(controller)
    to_ns = controller.to_ns
    controller.stopped(perf_counter_ns() + 10**9)
    assert (controller.reason, controller.to_ns) == ("converged", to_ns)


def test_the_server_is_scraped_twice_outside_the_interval() -> None:
    """`from` just before the interval starts, `to` once the stop is decided: never at the
    windows in between, where a scrape would load the server being measured."""
    taken: list[int] = []

    def scrape() -> str:
        taken.append(perf_counter_ns())
        return f"scrape {len(taken)}"

    controller = _point(scrape=scrape).controller
    _run(controller)
    assert controller.from_ns is not None
    assert controller.to_ns is not None
    assert len(controller.windows) == 3
    assert controller.scrapes == {"from": "scrape 1", "to": "scrape 2"}
    assert len(taken) == 2
    assert taken[0] < controller.from_ns
    assert taken[1] >= controller.to_ns


def test_a_failed_scrape_leaves_no_stale_page() -> None:
    """A page that could not be read at the end must not pass for the end's metrics."""
    pages = iter(["at from", None])
    controller = _point(scrape=lambda: next(pages)).controller
    _run(controller)
    assert controller.scrapes == {"from": "at from"}


def test_every_window_is_flushed_before_it_is_judged() -> None:
    """Records still in a process's buffer at a window's end are shipped before the window is
    judged (the settle only covers their way here, not the shipper's timer)."""
    point = _point([40])
    records, controller = point.records, point.controller
    point.harness.records = _records([point.t0 + MS], [MS])  # nothing else shipped by itself
    flushed: list[int] = []
    shipped = [0]  # every record done by then has been shipped

    def flush() -> None:  # what a process's shipper does on FLUSH: everything it has, now
        flushed.append(perf_counter_ns())
        upto = perf_counter_ns()  # each record once: from where the last flush left off
        done = records.done_ns
        controller.on_chunk(records.select((done > shipped[-1]) & (done <= upto)))
        shipped.append(upto)

    controller._flush = flush
    _run(controller)
    assert controller.reason == "converged"
    assert [w.requests for w in controller.windows] == [40, 40, 40]
    assert len(flushed) == 3  # one per window
    from_ns = controller.from_ns
    assert from_ns is not None
    assert all(at >= from_ns + (i + 1) * STEP for i, at in enumerate(flushed))


def test_records_shipped_while_the_interval_starts_count_once() -> None:
    """The backlog is taken when the interval becomes known, before anything can yield: a
    chunk that arrives during the `from` scrape's wait is added once, by `on_chunk`."""
    point = _point([40], scrape=lambda: "page")
    records, controller = point.records, point.controller
    first = records.select(np.arange(len(records)) < 4)  # the warm-up, known at the start
    rest = records.select(np.arange(len(records)) >= 4)
    point.harness.records = first

    def arrive() -> None:
        _wait_for(lambda: controller.accumulator is not None)
        point.harness.records = records  # the collector now holds everything...
        controller.on_chunk(rest)  # ...and hands the new chunk over, as it does

    gevent.spawn(arrive)
    _run(controller)
    assert [w.requests for w in controller.windows] == [40, 40, 40]


# --- the incremental windows agree with the report's --------------------------------------


def test_accumulator_matches_the_batch_windows_of_runs_stats() -> None:
    """The stopping rule and the report must see the same windows (one definition)."""
    rng = np.random.default_rng(4)
    n = 3000
    done = np.sort(rng.integers(0, 2_000 * MS, n))
    latency = rng.integers(MS // 2, 30 * MS, n)
    kinds = [Outcome.OK] * 3 + [Outcome.HTTP_STATUS, Outcome.INCOMPLETE, Outcome.DROPPED]
    outcome = rng.choice(kinds, n)
    records = _records(done.tolist(), latency.tolist(), outcome.tolist())
    from_ns, window_s = 300 * MS, 0.25
    accumulator = WindowAccumulator(from_ns, window_s)
    for part in np.array_split(np.arange(n), 7):  # chunk by chunk, as they arrive
        accumulator.add(records.select(part))
    records.from_ns, records.to_ns = from_ns, from_ns + 6 * 250 * MS
    expected = windows(records, window_s)
    got = [accumulator.window(i) for i in range(6)]
    assert [w.requests for w in got] == [w.requests for w in expected]
    assert [w.start_s for w in got] == [w.start_s for w in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.p50_ms == pytest.approx(theirs.p50_ms)
        assert mine.p99_ms == pytest.approx(theirs.p99_ms)
        assert mine.rps == pytest.approx(theirs.rps)


def test_accumulator_counts_only_finished_requests_after_from() -> None:
    acc = WindowAccumulator(from_ns=100 * MS, window_s=0.1)
    acc.add(
        _records(
            [50 * MS, 150 * MS, 160 * MS, 170 * MS, 180 * MS],
            [MS, 2 * MS, 4 * MS, 9 * MS, 9 * MS],
            [Outcome.OK, Outcome.OK, Outcome.TIMEOUT, Outcome.INCOMPLETE, Outcome.DROPPED],
        )
    )
    first = acc.window(0)
    assert first.requests == 2  # the OK and the timeout; not the warm-up, incomplete, dropped
    assert first.rps == pytest.approx(20.0)
    assert first.p50_ms == first.p99_ms == 2.0  # latency only of successful requests
    empty = acc.window(1)
    assert empty.requests == 0
    assert np.isnan(empty.p50_ms)
    assert np.isnan(empty.p99_ms)


def test_windows_of_a_handful_run_to_the_cap_with_the_default_guard() -> None:
    """Steady windows of 40 requests agree, but 120 successful requests cannot carry a p99:
    with the default guard the point is not allowed to settle on them."""
    point = _point(plan=_plan(stability=Stability()))
    _run(point.controller)
    assert (point.controller.reason, point.controller.converged) == ("cap", False)
