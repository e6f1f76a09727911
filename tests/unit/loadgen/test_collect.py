"""Records travel in chunks over Locust's messaging and are accounted for exactly once.

Messages go through msgpack exactly as Locust's `rpc.protocol.Message` serializes them (Locust
itself is not imported: it would monkey-patch the whole test process with gevent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gevent
import msgpack  # type: ignore[import-untyped]
import numpy as np
import pytest

from servingbench.loadgen.collect import (
    DONE_MSG,
    LOCAL_NODE,
    RECORDS_MSG,
    RecordCollector,
    RecordShipper,
    boot_id,
    decode_chunk,
    encode_chunk,
)
from servingbench.runs.records import Outcome, RecordBuffer, RequestRecords


@dataclass
class _Message:
    """What a Locust message handler receives: its data and the sender's node id."""

    type: str
    data: Any
    node_id: str


class _Wire:
    """A process's side of Locust's messaging: everything it sends, as the other side gets it."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.sent: list[_Message] = []

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        raw = msgpack.dumps((msg_type, data, self.node))  # Locust's Message.serialize
        self.sent.append(_Message(*msgpack.loads(raw, raw=False, strict_map_key=False)))

    def of(self, msg_type: str) -> list[_Message]:
        return [m for m in self.sent if m.type == msg_type]


def _deliver(collector: RecordCollector, messages: list[_Message]) -> None:
    for msg in messages:
        if msg.type == RECORDS_MSG:
            collector.on_records(None, msg)
        elif msg.type == DONE_MSG:
            collector.on_done(None, msg)


def _fill(buffer: RecordBuffer, n: int, start: int = 1_000_000) -> None:
    """`n` records 1 us apart with every outcome a request can end in, cycled."""
    outcomes = [Outcome.OK, Outcome.HTTP_STATUS, Outcome.INCOMPLETE, Outcome.DROPPED]
    for i in range(n):
        outcome = outcomes[i % len(outcomes)]
        reason = "" if outcome is Outcome.OK else f"{outcome.label} reason"
        buffer.add(start + i * 1000, 500, outcome, reason, start + i * 1000 - 7, 42)


def _shipped(
    node: str, n: int, start: int = 1_000_000, max_chunk: int | None = None, finish: bool = True
) -> _Wire:
    """What a process `node` that recorded `n` requests (`_fill`) sends: its chunks, and its
    `done` unless `finish` is false (a process that died before the end)."""
    wire = _Wire(node)
    buffer = RecordBuffer()
    sizes = {} if max_chunk is None else {"max_chunk": max_chunk}
    shipper = RecordShipper(wire, buffer, **sizes)
    _fill(buffer, n, start)
    if finish:
        shipper.finish()
    else:
        shipper.ship()
    return wire


def _collected(*wires: _Wire) -> RecordCollector:
    """A collector that received everything these processes sent, in order."""
    collector = RecordCollector()
    for wire in wires:
        _deliver(collector, wire.sent)
    return collector


def test_boot_id_is_this_hosts() -> None:
    """Same boot id, same CLOCK_MONOTONIC: the collector trusts it without a clock offset."""
    assert boot_id() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_chunk_survives_msgpack_exactly() -> None:
    buffer = RecordBuffer()
    _fill(buffer, 6)
    records = buffer.drain()
    raw = msgpack.dumps(encode_chunk(records, seq=5))
    seq, back = decode_chunk(msgpack.loads(raw, raw=False, strict_map_key=False))
    assert seq == 5
    for column in ("start_ns", "latency_ns", "outcome", "intended_ns", "server_ns"):
        assert getattr(back, column).tolist() == getattr(records, column).tolist(), column
    assert back.start_ns.dtype == np.int64
    assert back.outcome.dtype == np.int8
    assert (
        back.reasons
        == records.reasons
        == {
            "http-status": {"http-status reason": 2},
            "incomplete": {"incomplete reason": 1},
            "dropped": {"dropped reason": 1},
        }
    )


def test_chunk_with_a_wrong_count_is_refused() -> None:
    buffer = RecordBuffer()
    _fill(buffer, 3)
    data = encode_chunk(buffer.drain(), seq=0)
    data["count"] = 4
    with pytest.raises(ValueError, match="chunk 0 holds 3 records, says 4"):
        decode_chunk(data)


def test_shipper_sends_bounded_chunks_then_done_with_totals() -> None:
    """25 records, at most 10 a chunk: 3 chunks in sequence; each carries its own records'
    reasons, which add up to the buffer's."""
    wire = _shipped("worker-1", 25, max_chunk=10)
    chunks = [decode_chunk(m.data) for m in wire.of(RECORDS_MSG)]
    assert [seq for seq, _ in chunks] == [0, 1, 2]
    assert [len(part) for _, part in chunks] == [10, 10, 5]
    counts = [part.reasons for _, part in chunks]
    assert counts[2] == {  # records 20-24: ok, http-status, incomplete, dropped, ok
        "http-status": {"http-status reason": 1},
        "incomplete": {"incomplete reason": 1},
        "dropped": {"dropped reason": 1},
    }
    total = sum(sum(c.values()) for chunk in counts for c in chunk.values())
    assert total == 25 - 7  # every record but the seven successes has a reason
    [done] = wire.of(DONE_MSG)
    assert done.data == {"chunks": 3, "records": 25, "boot_id": boot_id(), "timed_connects": 0}
    assert wire.sent[-1] is done  # done comes after every chunk


def test_shipper_ships_while_the_test_runs() -> None:
    """The loop drains the buffer every interval, so a worker's memory stays bounded."""
    wire = _Wire("worker-1")
    buffer = RecordBuffer()
    shipper = RecordShipper(wire, buffer, interval_s=0.01)
    shipper.start()
    _fill(buffer, 4)
    deadline = gevent.get_hub().loop.now() + 5
    while not wire.of(RECORDS_MSG) and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.01)
    assert len(buffer) == 0
    _fill(buffer, 3, start=9_000_000)
    shipper.finish()
    assert sum(m.data["count"] for m in wire.of(RECORDS_MSG)) == 7
    assert wire.of(DONE_MSG)[0].data["records"] == 7
    sent = len(wire.sent)
    gevent.sleep(0.05)
    assert len(wire.sent) == sent  # the loop is gone after finish


def test_every_request_is_counted_exactly_once() -> None:
    """ok, error, incomplete and dropped records from two workers all reach the snapshot once."""
    wires = []
    for node, n in (("worker-1", 23), ("worker-2", 17)):
        wire = _Wire(node)
        buffer = RecordBuffer()
        shipper = RecordShipper(wire, buffer, max_chunk=4)
        _fill(buffer, n - 5, start=1_000_000 if node == "worker-1" else 1_000_500)
        shipper.ship()  # a chunk during the test, the rest at the end
        _fill(buffer, 5, start=50_000_000)
        shipper.finish()
        wires.append(wire)
    collector = _collected(*wires)
    merged = collector.snapshot()
    assert len(merged) == 40
    codes, counts = np.unique(merged.outcome, return_counts=True)
    # each worker cycles ok/http/incomplete/dropped over 18 (or 12) + 5 records
    assert {Outcome(int(o)): int(c) for o, c in zip(codes, counts, strict=True)} == {
        Outcome.OK: 5 + 2 + 3 + 2,
        Outcome.HTTP_STATUS: 5 + 1 + 3 + 1,
        Outcome.INCOMPLETE: 4 + 1 + 3 + 1,
        Outcome.DROPPED: 4 + 1 + 3 + 1,
    }
    assert sum(sum(v.values()) for v in merged.reasons.values()) == 40 - 12  # all but the ok
    assert bool(np.all(np.diff(merged.start_ns) >= 0))  # sorted by start across workers
    assert collector.first_start_ns() == 1_000_000
    reports = {r.node: r for r in collector.reports()}
    assert not reports["worker-1"].lost
    assert not reports["worker-2"].lost
    assert (reports["worker-1"].records, reports["worker-1"].declared_records) == (23, 23)
    assert (reports["worker-1"].chunks, reports["worker-1"].declared_chunks) == (7, 7)
    assert reports["worker-1"].clock_uncertainty_ns == 0  # same host: same clock


def test_a_duplicate_chunk_is_ignored() -> None:
    collector = RecordCollector()
    wire = _shipped("worker-1", 3)
    chunk = wire.of(RECORDS_MSG)[0]
    assert collector.on_records(None, chunk) is not None
    assert collector.on_records(None, chunk) is None
    _deliver(collector, wire.of(DONE_MSG))
    assert len(collector.snapshot()) == 3
    [report] = collector.reports()
    assert (report.chunks, report.records, report.lost) == (1, 3, False)


def test_a_missing_chunk_marks_the_worker_lost_with_the_counts() -> None:
    wire = _shipped("worker-1", 25, max_chunk=10)
    wire.sent = [m for m in wire.sent if not (m.type == RECORDS_MSG and m.data["seq"] == 1)]
    [report] = _collected(wire).reports()
    assert report.lost
    assert report.reason == "sent 25 records in 3 chunks, 15 in 2 arrived"


def test_a_worker_that_never_says_done_is_lost() -> None:
    collector = _collected(_shipped("worker-1", 2, finish=False))
    assert collector.pending(set()) == {"worker-1"}  # it sent records: it is expected
    [report] = collector.reports()
    assert report.lost
    assert report.reason == "never said it was done (died or cut off)"
    assert len(collector.snapshot()) == 2  # what did arrive is kept


def test_an_idle_worker_with_no_records_is_complete() -> None:
    """A worker that ran no request still says done (0 in 0 chunks): not lost."""
    wire = _shipped("worker-1", 0)
    assert wire.of(RECORDS_MSG) == []
    [report] = _collected(wire).reports()
    assert (report.lost, report.records, report.declared_records) == (False, 0, 0)


def test_wait_done_returns_once_every_worker_is_done() -> None:
    """The drain handshake: the master waits, cooperatively, for each worker's `done`."""
    collector = _collected(_shipped("w1", 3))
    later = gevent.spawn_later(0.05, _deliver, collector, _shipped("w2", 3).sent)
    assert collector.wait_done({"w1", "w2"}, timeout_s=10) == set()
    later.join()
    assert len(collector.snapshot()) == 6


def test_wait_done_gives_up_and_names_the_missing() -> None:
    collector = _collected(_shipped("w1", 0))
    assert collector.wait_done({"w1", "w2"}, timeout_s=0.1) == {"w2"}
    collector.mark_lost("w2", "no last records within 0.1 s of the stop")
    assert collector.pending({"w1", "w2"}) == set()  # a lost worker is no longer waited for
    reports = {r.node: r for r in collector.reports()}
    assert reports["w2"].lost
    assert reports["w2"].reason == "no last records within 0.1 s of the stop"


def test_a_worker_lost_after_done_keeps_its_records() -> None:
    """Locust dropping a worker that already delivered everything does not void its records."""
    collector = _collected(_shipped("w1", 3))
    collector.mark_lost("w1", "disconnected 3.0 s into the test")
    [report] = collector.reports()
    assert (report.lost, report.reason) == (False, None)


def test_live_workers_skips_missing_and_lost() -> None:
    @dataclass
    class _Client:
        state: str

    class _Runner:
        clients: ClassVar[dict[str, _Client]] = {
            "a": _Client("running"),
            "b": _Client("missing"),
            "c": _Client("running"),
        }

    collector = RecordCollector()
    collector.mark_lost("c", "disconnected")
    assert collector.live_workers(_Runner()) == ["a"]


def test_a_remote_workers_records_move_to_the_collectors_clock() -> None:
    """A worker on another host: its times minus its measured offset; same host: untouched."""
    collector = RecordCollector()
    collector.set_clock("remote", offset_ns=300_000, uncertainty_ns=40_000)
    wire = _Wire("remote")
    buffer = RecordBuffer()
    buffer.add(1_000_000, 500, Outcome.OK, "", 999_000)
    shipper = RecordShipper(wire, buffer)
    shipper.ship()
    chunk = collector.on_records(None, wire.of(RECORDS_MSG)[0])
    assert chunk is not None
    assert (chunk.start_ns.tolist(), chunk.intended_ns.tolist()) == ([700_000], [699_000])
    assert chunk.latency_ns.tolist() == [500]  # durations do not move
    assert collector.first_start_ns() == 700_000
    done = _Message(DONE_MSG, {"chunks": 1, "records": 1, "boot_id": "another-host"}, "remote")
    collector.on_done(None, done)
    assert collector.snapshot().start_ns.tolist() == [700_000]
    [report] = collector.reports()
    assert (report.clock_offset_ns, report.clock_uncertainty_ns) == (300_000, 40_000)
    assert not report.lost


def test_a_worker_on_this_host_needs_no_offset() -> None:
    """Its `done` carries this boot id: any offset estimated from pings is dropped for exact 0."""
    collector = RecordCollector()
    collector.set_clock("w1", offset_ns=12_345, uncertainty_ns=6_000)  # before its boot id is known
    _deliver(collector, _shipped("w1", 1, start=1_000_000).sent)
    assert collector.snapshot().start_ns.tolist() == [1_000_000]
    collector.set_clock("w1", offset_ns=99, uncertainty_ns=1)  # late pongs change nothing now
    [report] = collector.reports()
    assert (report.clock_offset_ns, report.clock_uncertainty_ns) == (0, 0)


def test_the_local_process_is_on_the_collectors_clock() -> None:
    """Locust names a process's messages to itself `local`: no offset, no uncertainty."""
    report = RecordCollector().ledger(LOCAL_NODE).report
    assert (report.boot_id, report.clock_uncertainty_ns) == (boot_id(), 0)


def test_empty_collection_is_empty() -> None:
    collector = RecordCollector()
    assert len(collector.snapshot()) == 0
    assert collector.first_start_ns() is None
    assert collector.reports() == []


def test_snapshot_is_absolute_times() -> None:
    """The snapshot keeps absolute ns (t0 = 0): the controller and writer shift it themselves."""
    snap: RequestRecords = _collected(_shipped(LOCAL_NODE, 1, start=5_000_000_000)).snapshot()
    assert snap.start_ns.tolist() == [5_000_000_000]
    assert (snap.from_ns, snap.to_ns) == (0, 0)
