"""Raw records: per-process parts merged into one point, the measured interval, outcome classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servingbench.runs.records import UNKNOWN_NS, Outcome, RecordBuffer, RequestRecords

BASE = 5_000_000_000_000  # an absolute perf_counter_ns reading


def _part(starts: list[int], outcome: Outcome = Outcome.OK, reason: str = "") -> RequestRecords:
    buffer = RecordBuffer()
    for start in starts:
        buffer.add(start, 1_000 + start % 7, outcome, reason, server_ns=start % 5)
    return buffer.drain()


def _records(
    start: list[int],
    latency: list[int],
    outcome: list[Outcome],
    intended: list[int] | None = None,
    interval: tuple[int, int] = (100, 200),
) -> RequestRecords:
    return RequestRecords(
        start_ns=np.asarray(start, dtype=np.int64),
        latency_ns=np.asarray(latency, dtype=np.int64),
        outcome=np.asarray(outcome, dtype=np.int8),
        intended_ns=np.asarray(start if intended is None else intended, dtype=np.int64),
        server_ns=np.full(len(start), UNKNOWN_NS, dtype=np.int64),
        from_ns=interval[0],
        to_ns=interval[1],
    )


def test_concat_sorts_shifts_sets_interval_and_merges_reasons() -> None:
    """Parts from several processes become one time-ordered point, times since t0."""
    a = _part([BASE + 30, BASE + 10], Outcome.HTTP_STATUS, "HTTP 503")
    b = _part([BASE + 20, BASE + 40], Outcome.HTTP_STATUS, "HTTP 503")
    c = _part([BASE + 25], Outcome.TIMEOUT, "timeout")
    merged = RequestRecords.concat([a, b, c], t0_ns=BASE, from_ns=BASE + 20, to_ns=BASE + 35)
    assert merged.start_ns.tolist() == [10, 20, 25, 30, 40]
    assert merged.intended_ns.tolist() == [10, 20, 25, 30, 40]
    assert merged.latency_ns.tolist() == [1_000 + (BASE + s) % 7 for s in (10, 20, 25, 30, 40)]
    assert merged.server_ns.tolist() == [(BASE + s) % 5 for s in (10, 20, 25, 30, 40)]
    http, timeout = Outcome.HTTP_STATUS, Outcome.TIMEOUT
    assert merged.outcome.tolist() == [http, http, timeout, http, http]
    assert (merged.from_ns, merged.to_ns) == (20, 35)
    assert merged.warmup.tolist() == [True, False, False, False, False]
    assert merged.measured_mask.tolist() == [False, True, True, True, False]
    assert merged.reasons == {"http-status": {"HTTP 503": 4}, "timeout": {"timeout": 1}}
    assert merged.start_ns.dtype == np.int64
    assert merged.outcome.dtype == np.int8


def test_concat_of_nothing_is_empty_with_the_right_types() -> None:
    """A point whose processes sent nothing still yields well-typed, empty columns."""
    merged = RequestRecords.concat([], t0_ns=0, from_ns=0, to_ns=10)
    assert len(merged) == 0
    assert merged.duration_s == pytest.approx(1e-8)
    empty = RequestRecords.concat([_part([])], t0_ns=0, from_ns=0, to_ns=0)
    assert empty.outcome.dtype == np.int8
    assert empty.start_ns.dtype == np.int64


def test_buffer_defaults_and_drain_hands_over_once() -> None:
    """Closed loop: intended = start; no Server-Timing = UNKNOWN_NS; a drain empties the buffer."""
    buffer = RecordBuffer()
    buffer.add(100, 5, Outcome.OK)
    buffer.add(90, 7, Outcome.DROPPED, "no free slot", intended_ns=80)
    buffer.add(110, 3, Outcome.OK, server_ns=2)
    assert len(buffer) == 3
    first = buffer.drain()
    assert first.intended_ns.tolist() == [100, 80, 110]
    assert first.server_ns.tolist() == [UNKNOWN_NS, UNKNOWN_NS, 2]
    assert first.reasons == {"dropped": {"no free slot": 1}}
    assert len(buffer) == 0
    assert buffer.total == 3  # the running total survives a drain
    buffer.add(120, 1, Outcome.OK)
    second = buffer.drain()
    assert second.start_ns.tolist() == [120]
    assert second.reasons == {}


def test_buffer_truncates_long_reasons() -> None:
    """Reason texts are capped, so one chatty server cannot bloat every point file."""
    buffer = RecordBuffer()
    buffer.add(0, 1, Outcome.OTHER, "x" * 1000)
    (reason,) = buffer.drain().reasons["other"]
    assert len(reason) == 300


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    """Every column, the interval and the reasons survive requests.npz."""
    records = _records(
        [0, 110, 150], [5, 20, 60], [Outcome.OK, Outcome.INCOMPLETE, Outcome.DROPPED], [0, 105, 150]
    )
    records.server_ns[0] = 4
    records.reason = np.asarray([-1, 0, 1], dtype=np.int32)
    records.reason_texts = ["still in flight", "no slot"]
    path = tmp_path / "requests.npz"
    records.save(path)
    loaded = RequestRecords.load(path)
    for column in ("start_ns", "latency_ns", "outcome", "intended_ns", "server_ns"):
        assert getattr(loaded, column).tolist() == getattr(records, column).tolist(), column
    assert (loaded.from_ns, loaded.to_ns) == (100, 200)
    assert loaded.reasons == {"incomplete": {"still in flight": 1}, "dropped": {"no slot": 1}}
    assert not list(tmp_path.glob(".*.tmp"))


def test_interval_is_judged_by_the_intended_start() -> None:
    """Open loop: a request meant for the warm-up but sent late is still warm-up, and one meant
    for the interval counts with its full latency even when it ends after the stop."""
    records = _records(
        start=[95, 105, 150, 199, 205],
        latency=[10, 10, 10, 50, 1],
        outcome=[Outcome.OK] * 5,
        intended=[90, 99, 150, 199, 200],
    )
    assert records.warmup.tolist() == [True, True, False, False, False]
    assert records.measured_mask.tolist() == [False, False, True, True, False]
    measured = records.measured()
    assert measured.start_ns.tolist() == [150, 199]
    assert (measured.from_ns, measured.to_ns) == (100, 200)
    assert records.done_ns.tolist() == [105, 115, 160, 249, 206]
    assert records.response_ns.tolist() == [15, 16, 10, 50, 6]
    # throughput counts completions in [from, to): the late warm-up ones too, not the straddler
    assert records.completed_in(100, 200).tolist() == [True, True, True, False, False]
    assert records.duration_s == pytest.approx(100e-9)


def test_incomplete_and_dropped_never_count_as_completed() -> None:
    """An abandoned or never-sent request is not throughput, whatever its times say."""
    records = _records(
        [110, 120, 130, 140],
        [5, 5, 5, 0],
        [Outcome.OK, Outcome.TIMEOUT, Outcome.INCOMPLETE, Outcome.DROPPED],
    )
    assert records.finished.tolist() == [True, True, False, False]
    assert records.completed_in(100, 200).tolist() == [True, True, False, False]
    assert records.ok.tolist() == [True, False, False, False]


def test_outcome_labels() -> None:
    """Labels are what tables and reasons are keyed by: lower case, dashes."""
    assert [o.label for o in Outcome] == [
        "ok",
        "http-status",
        "grpc-status",
        "timeout",
        "connection",
        "wrong-answer",
        "malformed",
        "other",
        "incomplete",
        "dropped",
    ]
    # the codes are stored in requests.npz: they must not move
    assert (int(Outcome.INCOMPLETE), int(Outcome.DROPPED)) == (8, 9)
