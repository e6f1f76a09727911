"""The interleaved session's schedule, and the gate each Locust process follows.

A measured block gives every series one slice at each user count, with the user counts in a
shuffled order and the series shuffled within each: two series of one level are never more
than a level's slices apart, and their slices of block k pair up.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from time import perf_counter_ns

import gevent
import pytest

from servingbench.loadgen.schedule import (
    Gate,
    ScheduleFollower,
    SliceOrder,
    read_counts,
    read_schedule,
    ready_path,
    write_cut,
    write_schedule,
)
from servingbench.runs.point import InterleavePlan
from servingbench.sweep.interleave import Cell, session_slices

PLAN = InterleavePlan(slice_s=1.2, settle_s=0.2, gap_s=0.15, blocks=5, seed=11)
CELLS = [Cell(series, users) for series in range(3) for users in (1, 10, 50)]
CELLS.append(Cell(0, 1, "wrk"))
WARM = [Cell(series, 50) for series in range(3)]


def test_a_warm_up_block_then_every_cell_once_per_block() -> None:
    slices = session_slices(CELLS, PLAN, 1_000, WARM)
    assert [s.cell for s in slices[:3]] == WARM
    assert {s.block for s in slices[:3]} == {0}
    measured = slices[3:]
    counts = Counter((s.block, s.cell) for s in measured)
    assert set(counts.values()) == {1}
    assert len(measured) == PLAN.blocks * len(CELLS)
    assert [s.block for s in measured] == sorted(s.block for s in measured)


def test_slices_are_back_to_back_with_their_gap_and_settle() -> None:
    slices = session_slices(CELLS, PLAN, 1_000, WARM)
    assert slices[0].start_ns == 1_000
    for before, after in itertools.pairwise(slices):
        assert after.start_ns - before.end_ns == 150_000_000
        assert before.end_ns - before.start_ns == 1_200_000_000
    assert all(s.measured_from_ns == s.start_ns + 200_000_000 for s in slices)


def test_each_block_visits_a_level_at_a_time_in_shuffled_orders() -> None:
    """Within a block the cells of one user count are adjacent; the orders vary between
    blocks and are the same for the same seed."""
    slices = session_slices(CELLS, PLAN, 0, WARM)[3:]
    orders = []
    for block in range(1, PLAN.blocks + 1):
        cells = [s.cell for s in slices if s.block == block]
        levels = [c.users for c in cells]
        runs = [u for i, u in enumerate(levels) if i == 0 or levels[i - 1] != u]
        assert sorted(runs) == [1, 10, 50]  # each level once, contiguous
        orders.append(tuple(cells))
    assert len(set(orders)) > 1
    again = session_slices(CELLS, PLAN, 0, WARM)[3:]
    assert [s.cell for s in again] == [s.cell for s in slices]
    other = session_slices(CELLS, PLAN.model_copy(update={"seed": 12}), 0, WARM)[3:]
    assert [s.cell for s in other] != [s.cell for s in slices]


def test_schedule_file_round_trip(tmp_path: Path) -> None:
    orders = [SliceOrder(10, 20, 3), SliceOrder(30, 40, 1)]
    path = tmp_path / "schedule.json"
    write_schedule(path, orders)
    assert read_schedule(path) == orders
    assert ready_path(path) == tmp_path / "schedule.json.ready"


def test_the_gate_lets_only_the_slice_s_users_through() -> None:
    gate = Gate()
    passed: list[int] = []

    def user(index: int) -> None:
        while gate.wait(index):
            passed.append(index)
            gevent.sleep(0.001)

    users = [gevent.spawn(user, i) for i in range(4)]
    gevent.sleep(0.01)
    assert passed == []  # closed until a slice opens it
    gate.set_users(2)
    gevent.sleep(0.02)
    assert set(passed) == {0, 1}
    gate.set_users(0)
    gevent.sleep(0.005)
    passed.clear()
    gevent.sleep(0.01)
    assert passed == []
    gate.end()
    gevent.joinall(users, timeout=2)
    assert all(u.dead for u in users)


def test_the_follower_waits_for_its_schedule_and_ends_after_the_last_slice(
    tmp_path: Path,
) -> None:
    schedule = tmp_path / "schedule.json"
    gate = Gate()
    ended: list[int] = []
    follower = ScheduleFollower(schedule, gate, lambda: ended.append(perf_counter_ns()), 0.02)
    follower.ready()
    assert ready_path(schedule).is_file()
    gevent.sleep(0.05)
    now = perf_counter_ns()
    write_schedule(
        schedule,
        [SliceOrder(now + 60_000_000, now + 90_000_000, 3), SliceOrder(now + 120_000_000,
                                                                        now + 150_000_000, 1)],
    )  # fmt: skip
    seen: list[int] = []
    deadline = perf_counter_ns() + 2_000_000_000
    while not ended and perf_counter_ns() < deadline:
        seen.append(gate.users)
        gevent.sleep(0.002)
    assert ended, "the follower never ended the test"
    assert ended[0] >= now + 150_000_000 + 20_000_000  # after the last slice and the grace
    assert 3 in seen
    assert 1 in seen
    assert gate.ended
    assert not gate.wait(0)


@pytest.mark.parametrize("users", [0, 5])
def test_a_user_past_the_slice_s_count_waits_for_a_later_slice(users: int) -> None:
    gate = Gate()
    gate.set_users(users)
    waiter = gevent.spawn(gate.wait, 7)
    gevent.sleep(0.01)
    assert not waiter.ready()
    gate.set_users(8)
    assert waiter.get(timeout=1) is True


def test_the_follower_counts_each_slice_s_requests_and_stops_at_a_cut(tmp_path: Path) -> None:
    """After each slice but the last, once its requests are answered, the process writes how
    many it started per slice; a cut written before a slice is due skips it and the rest."""
    schedule = tmp_path / "schedule.json"
    gate = Gate()
    ended: list[int] = []
    follower = ScheduleFollower(schedule, gate, lambda: ended.append(perf_counter_ns()), 0.0)

    def user(index: int) -> None:
        while gate.wait(index):
            gevent.sleep(0.002)  # one request

    users = [gevent.spawn(user, i) for i in range(2)]
    follower.ready()
    now = perf_counter_ns()
    ms = 1_000_000
    orders = [SliceOrder(now + (40 + 250 * k) * ms, now + (70 + 250 * k) * ms, 2) for k in range(4)]
    write_schedule(schedule, orders)
    deadline = perf_counter_ns() + 2_000_000_000
    while len(read_counts(schedule)) < 2 and perf_counter_ns() < deadline:
        gevent.sleep(0.002)
    write_cut(schedule, orders[2].start_ns)  # before slice 3 is due
    while not ended and perf_counter_ns() < deadline:
        gevent.sleep(0.002)
    assert ended, "the follower never ended the test"
    assert ended[0] < orders[3].start_ns  # slices 3 and 4 skipped
    counts = read_counts(schedule)
    assert len(counts) == 2
    assert all(c > 0 for c in counts)
    assert sum(counts) == gate.started
    gevent.joinall(users, timeout=2)
