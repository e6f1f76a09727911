"""Open-loop arrivals: the schedule is kept whatever the server does, and overflow is counted."""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Iterator
from time import perf_counter_ns

import gevent
import numpy as np
import pytest

from servingbench.loadgen.arrivals import (
    DEFAULT_SLOTS,
    DROPPED_REASON,
    Dispatcher,
    Slot,
    arrival_offsets,
    open_loop_slots,
)
from servingbench.loadgen.http1 import HttpReply
from servingbench.loadgen.payloads import Payload
from servingbench.loadgen.recorder import Recorder
from servingbench.loadgen.verdicts import OK, Verdict
from servingbench.runs.records import Outcome, RecordBuffer, RequestRecords
from servingbench.sweep.settings import BenchSettings

PAYLOAD = Payload(b"x", 1, np.array([0]), np.array([[1.0]]))


def _first(n: int, offsets: Iterator[int]) -> np.ndarray:
    return np.fromiter(itertools.islice(offsets, n), dtype=np.int64, count=n)


def test_constant_arrivals_are_evenly_spaced() -> None:
    assert _first(5, arrival_offsets(200.0, "constant", seed=1)).tolist() == [
        0,
        5_000_000,
        10_000_000,
        15_000_000,
        20_000_000,
    ]


def test_constant_processes_interleave_into_one_even_stream() -> None:
    """4 processes at rate/4 each, phase-shifted: together, one arrival every 1/rate."""
    streams = [_first(25, arrival_offsets(400.0, "constant", 1, i, 4)) for i in range(4)]
    assert streams[1][:3].tolist() == [2_500_000, 12_500_000, 22_500_000]
    merged = np.sort(np.concatenate(streams))
    assert merged.tolist() == [k * 2_500_000 for k in range(100)]


def test_poisson_is_seeded_and_has_the_asked_rate() -> None:
    """Same seed, same schedule (the run records its seed); mean gap 1/rate, gaps exponential."""
    a = _first(20_000, arrival_offsets(1000.0, "poisson", seed=7))
    assert a.tolist() == _first(20_000, arrival_offsets(1000.0, "poisson", seed=7)).tolist()
    assert a.tolist() != _first(20_000, arrival_offsets(1000.0, "poisson", seed=8)).tolist()
    gaps = np.diff(np.concatenate([[0], a]))
    assert bool(np.all(gaps >= 0))
    assert gaps.mean() == pytest.approx(1_000_000, rel=0.03)  # 1 ms; sd of the mean ~0.7 %
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)  # exponential: CV 1
    assert a[0] > 0  # the first arrival is a draw too, not at t0


def test_poisson_processes_are_independent_and_superpose_to_the_whole_rate() -> None:
    streams = [_first(5_000, arrival_offsets(800.0, "poisson", 3, i, 4)) for i in range(4)]
    assert streams[0][:10].tolist() != streams[1][:10].tolist()
    horizon = min(int(s[-1]) for s in streams)
    merged = np.concatenate([s[s <= horizon] for s in streams])
    assert len(merged) / (horizon / 1e9) == pytest.approx(800.0, rel=0.05)


def test_constant_processes_share_one_lattice_whenever_they_start() -> None:
    """Two processes at 100/s together start 3.7 ms apart: each anchors on the next multiple
    of the whole period (20 ms), so process 1's arrivals still fall halfway between process 0's
    instead of wherever its own start put them."""
    first = Dispatcher(100.0, "constant", 1, RecordBuffer(), index=0, processes=2)
    second = Dispatcher(100.0, "constant", 1, RecordBuffer(), index=1, processes=2)
    a = first.anchor(1_000_000_000 + 1_000_000)
    b = second.anchor(1_000_000_000 + 4_700_000)
    assert a == b == 1_020_000_000
    streams = [
        [anchor + next(offsets) for _ in range(3)]
        for anchor, offsets in (
            (a, arrival_offsets(100.0, "constant", 1, 0, 2)),
            (b, arrival_offsets(100.0, "constant", 1, 1, 2)),
        )
    ]
    merged = sorted(streams[0] + streams[1])
    assert set(np.diff(merged).tolist()) == {10_000_000}
    alone = Dispatcher(100.0, "constant", 1, RecordBuffer())
    assert alone.anchor(123) == 123  # one process: no lattice needed
    poisson = Dispatcher(100.0, "poisson", 1, RecordBuffer(), index=1, processes=2)
    assert poisson.anchor(123) == 123


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="arrival rate must be positive, got 0"):
        Dispatcher(0.0, "constant", 1, RecordBuffer())


def _drain_until(dispatcher: Dispatcher, arrivals: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while dispatcher.arrivals < arrivals and time.monotonic() < deadline:
        gevent.sleep(0.01)


def _unattended(
    rate: float, arrivals: int, meanwhile: Callable[[Dispatcher], object] | None = None
) -> tuple[Dispatcher, RequestRecords]:
    """A constant schedule with no slot to take it, run for at least `arrivals` arrivals
    (`meanwhile` runs right after the start); the dispatcher and what it recorded."""
    buffer = RecordBuffer()
    dispatcher = Dispatcher(rate, "constant", 1, buffer, first_slot_wait_s=0)
    dispatcher.start()
    if meanwhile is not None:
        meanwhile(dispatcher)
    _drain_until(dispatcher, arrivals)
    dispatcher.stop()
    records = buffer.drain()
    assert len(records) >= arrivals
    return dispatcher, records


def test_without_a_free_slot_every_arrival_is_dropped_and_recorded() -> None:
    """k6's dropped_iterations: never sent, recorded at its intended time with zero latency."""
    dispatcher, records = _unattended(500.0, 20)
    assert dispatcher.dropped == dispatcher.arrivals == len(records)
    assert set(records.outcome.tolist()) == {Outcome.DROPPED}
    assert records.reasons == {"dropped": {DROPPED_REASON: len(records)}}
    assert records.latency_ns.tolist() == [0] * len(records)
    assert records.intended_ns.tolist() == records.start_ns.tolist()
    assert set(np.diff(records.intended_ns).tolist()) == {2_000_000}  # the schedule, exactly


def _stall_the_hub(dispatcher: Dispatcher) -> None:
    gevent.sleep(0.01)
    time.sleep(0.1)  # blocks the whole hub, dispatcher included


def test_a_stalled_process_catches_up_on_schedule() -> None:
    """A 100 ms stall (a blocking call on the hub): the due arrivals go out in one batch, each
    with its own intended time; the schedule does not slip."""
    _, records = _unattended(1000.0, 150, _stall_the_hub)
    assert set(np.diff(records.intended_ns).tolist()) == {1_000_000}


def test_slots_take_arrivals_and_overflow_is_dropped_each_counted_once() -> None:
    """2 slots busy 30 ms each at 200/s: some arrivals find no slot. Every scheduled arrival is
    either sent (once, not early) or dropped (once), never both, never lost."""
    buffer = RecordBuffer()
    recorder = Recorder()
    recorder.buffer = buffer  # the dispatcher and the users share the process's buffer
    dispatcher = Dispatcher(200.0, "constant", 1, buffer)
    woke: list[tuple[int, int]] = []

    def slow(payload: Payload) -> HttpReply:
        gevent.sleep(0.03)
        return HttpReply(200, b"{}", -1)

    def ok(reply: HttpReply, payload: Payload) -> Verdict:
        return OK

    def user() -> None:
        slot = Slot()
        while (intended := dispatcher.take(slot)) is not None:
            woke.append((intended, perf_counter_ns()))
            recorder.measure("POST", "/x", slow, PAYLOAD, ok, intended)

    users = [gevent.spawn(user) for _ in range(2)]
    gevent.sleep(0)  # both slots parked before the first arrival
    dispatcher.start()
    _drain_until(dispatcher, 40)
    dispatcher.stop()
    gevent.joinall(users, timeout=5)
    assert all(u.dead for u in users)  # stop released the parked slots
    records = buffer.drain()
    sent = records.outcome != Outcome.DROPPED
    assert dispatcher.arrivals == len(records)  # one record per arrival
    assert dispatcher.dropped == int((~sent).sum()) > 0
    assert int(sent.sum()) == len(woke) > 0
    assert sorted(records.intended_ns.tolist()) == sorted(set(records.intended_ns.tolist()))
    assert set(np.diff(np.sort(records.intended_ns)).tolist()) == {5_000_000}  # none missing
    assert all(at >= intended for intended, at in woke)  # an arrival is never handed out early
    lateness = records.start_ns[sent] - records.intended_ns[sent]
    assert bool(np.all(lateness >= 0))
    assert set(records.outcome[sent].tolist()) == {Outcome.OK}


def test_an_arrival_goes_to_the_most_recently_freed_slot() -> None:
    """Last in, first out: at a low rate one warm slot (and its connection) carries the load,
    instead of every slot in turn idling long enough for the server to close it. Arrivals are
    handed out by hand here, so the order does not depend on how busy the machine is."""
    dispatcher = Dispatcher(100.0, "constant", 1, RecordBuffer())
    slots = [Slot() for _ in range(3)]
    got: list[int] = []

    def user(index: int) -> None:
        while dispatcher.take(slots[index]) is not None:
            got.append(index)

    users = [gevent.spawn(user, i) for i in range(3)]
    gevent.sleep(0)  # parked in order 0, 1, 2: slot 2 is the most recently freed
    for k in range(5):
        dispatcher._hand(k)
        gevent.sleep(0)  # the woken user records and parks again, last
    dispatcher.stop()
    gevent.joinall(users, timeout=5)
    assert got == [2] * 5
    assert dispatcher.dropped == 0


def test_the_schedule_starts_when_the_first_slot_is_ready() -> None:
    """Slots connect in `on_start`: arrivals due before any of them can take one would be
    dropped for the generator's own reason (3 of 312 in a 15 s standalone run at 20/s)."""
    buffer = RecordBuffer()
    dispatcher = Dispatcher(1000.0, "constant", 1, buffer)
    dispatcher.start()
    gevent.sleep(0.05)  # 50 arrivals' worth of time with no slot connected yet
    assert dispatcher.arrivals == 0
    slot = Slot()
    user = gevent.spawn(dispatcher.take, slot)
    assert user.get(timeout=5) is not None  # the first arrival went to the slot
    dispatcher.stop()
    assert dispatcher.arrivals >= 1
    assert buffer.drain().outcome.tolist().count(Outcome.DROPPED) == dispatcher.dropped


def test_without_any_slot_the_schedule_starts_after_the_wait() -> None:
    dispatcher = Dispatcher(1000.0, "constant", 1, RecordBuffer(), first_slot_wait_s=0.05)
    dispatcher.start()
    _drain_until(dispatcher, 10, timeout_s=5)
    dispatcher.stop()
    assert dispatcher.dropped == dispatcher.arrivals >= 10


def test_stop_releases_waiting_slots_and_ends_arrivals() -> None:
    dispatcher = Dispatcher(1000.0, "poisson", 1, RecordBuffer())
    slot = Slot()
    waiting = gevent.spawn(dispatcher.take, slot)
    gevent.sleep(0)
    assert list(dispatcher.idle) == [slot]
    dispatcher.stop()
    assert waiting.get(timeout=1) is None
    assert dispatcher.take(Slot()) is None  # after the stop: returns at once
    dispatcher.start()  # a stopped dispatcher does not start again
    gevent.sleep(0.02)
    assert dispatcher.arrivals == 0


def test_start_is_idempotent() -> None:
    """Locust fires spawning_complete again after a re-spawn: still one schedule."""
    _, records = _unattended(500.0, 10, Dispatcher.start)
    intended = records.intended_ns.tolist()
    assert len(set(intended)) == len(intended)  # no arrival scheduled twice


@pytest.mark.parametrize(
    ("users", "spawn_rate", "expected"),
    [(None, None, (DEFAULT_SLOTS, DEFAULT_SLOTS)), (10, None, (10, 10)), (10, 2.0, (10, 2.0))],
)
def test_a_standalone_open_loop_gets_slots_at_once(
    users: int | None, spawn_rate: float | None, expected: tuple[float, float]
) -> None:
    """`locust -f ... --arrival-rate 300` without `-u` must not run one slot (Locust's default
    user count), which would drop nearly every arrival; nor ramp its slots one per second."""
    options = argparse.Namespace(num_users=users, spawn_rate=spawn_rate)
    open_loop_slots(options, 300.0)
    assert (options.num_users, options.spawn_rate) == expected
    closed = argparse.Namespace(num_users=None, spawn_rate=None)
    open_loop_slots(closed, None)
    assert (closed.num_users, closed.spawn_rate) == (None, None)  # Locust's defaults apply


def test_the_sweep_and_a_standalone_run_share_the_slot_default() -> None:
    assert BenchSettings.model_fields["max_in_flight"].default == DEFAULT_SLOTS
