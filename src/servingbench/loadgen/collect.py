"""Every request record reaches one process over Locust's own messaging, on one clock.

Each process that runs users ships its records in bounded chunks (`RecordShipper`) while the
test runs, and the rest when it stops, followed by a `done` message with its total. The master
(or the only process, where Locust delivers messages to itself) collects them
(`RecordCollector`): per worker, it checks that the chunks arrived in sequence and that the
total matches, converts the worker's clock to its own, and writes one file at the end. A
worker's records are never assumed to be on the master's disk.

Clocks: records are stamped with `perf_counter_ns` (CLOCK_MONOTONIC). Processes on one host
share that clock (same boot id). For a worker on another host the master estimates the offset
NTP-style over the same messaging (several pings; the one with the shortest round trip wins,
its half round trip bounds the error); a worker whose offset cannot be bounded is reported.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import gevent
import numpy as np

from servingbench.runs.point import WorkerReport
from servingbench.runs.records import COLUMNS, RecordBuffer, RequestRecords

__all__ = [
    "CLOCK_PING",
    "CLOCK_PONG",
    "DONE_MSG",
    "DRAIN_MSG",
    "FLUSH_MSG",
    "RECORDS_MSG",
    "RecordCollector",
    "RecordShipper",
    "boot_id",
    "decode_chunk",
    "encode_chunk",
]

log = logging.getLogger(__name__)

RECORDS_MSG = "servingbench_records"
DONE_MSG = "servingbench_records_done"
DRAIN_MSG = "servingbench_drain"
FLUSH_MSG = "servingbench_flush"
CLOCK_PING = "servingbench_clock_ping"
CLOCK_PONG = "servingbench_clock_pong"

LOCAL_NODE = "local"
"""How Locust names the sender when a process sends messages to itself."""


def boot_id() -> str:
    """This host's boot id: processes with the same one share CLOCK_MONOTONIC exactly."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"{socket.gethostname()}-unknown-boot"


def encode_chunk(records: RequestRecords, seq: int) -> dict[str, Any]:
    """A chunk as msgpack-able data: raw little-endian column bytes, reason texts, its sequence."""
    data: dict[str, Any] = {
        name: column.astype(np.dtype(kind).newbyteorder("<")).tobytes()
        for (name, kind), column in zip(COLUMNS, records.columns().values(), strict=True)
    }
    data["reason_texts"] = records.reason_texts
    data["seq"] = seq
    data["count"] = len(records)
    return data


def decode_chunk(data: dict[str, Any]) -> tuple[int, RequestRecords]:
    columns = {
        name: np.frombuffer(data[name], dtype=np.dtype(kind).newbyteorder("<")).astype(kind)
        for name, kind in COLUMNS
    }
    records = RequestRecords(**columns, from_ns=0, to_ns=0, reason_texts=list(data["reason_texts"]))
    if len(records) != data["count"]:
        raise ValueError(f"chunk {data['seq']} holds {len(records)} records, says {data['count']}")
    return int(data["seq"]), records


class RecordShipper:
    """Sends this process's records to the collector every `interval_s` (bounded chunks)."""

    def __init__(
        self,
        runner: Any,
        buffer: RecordBuffer,
        interval_s: float = 0.5,
        max_chunk: int = 20_000,
    ) -> None:
        self.runner = runner
        self.buffer = buffer
        self.interval_s = interval_s
        self.max_chunk = max_chunk
        self.seq = 0
        self.sent = 0
        self._greenlet: gevent.Greenlet[Any, Any] | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval_s)
            self.ship()

    def ship(self) -> None:
        """Send what was recorded since the last chunk, in pieces of at most `max_chunk`."""
        records = self.buffer.drain()
        for lo in range(0, len(records), self.max_chunk):
            part = records.select(np.arange(lo, min(lo + self.max_chunk, len(records))))
            self.runner.send_message(RECORDS_MSG, encode_chunk(part, self.seq))
            self.seq += 1
            self.sent += len(part)

    def finish(self, timed_connects: int = 0) -> None:
        """The last records, then `done` with the totals (the collector checks them) and how
        many requests had to open their connection inside the timed call."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        self.ship()
        self.runner.send_message(
            DONE_MSG,
            {
                "chunks": self.seq,
                "records": self.sent,
                "boot_id": boot_id(),
                "timed_connects": timed_connects,
            },
        )


@dataclass
class _Ledger:
    report: WorkerReport
    parts: list[RequestRecords] = field(default_factory=list)
    seqs: set[int] = field(default_factory=set)
    done: bool = False


class RecordCollector:
    """Gathers every process's chunks (see the module docstring); one per master."""

    def __init__(self) -> None:
        self.boot_id = boot_id()
        self._ledgers: dict[str, _Ledger] = {}

    def ledger(self, node: str) -> _Ledger:
        if node not in self._ledgers:
            report = WorkerReport(node=node)
            if node == LOCAL_NODE:  # the collector's own records: its own clock
                report.boot_id, report.clock_uncertainty_ns = self.boot_id, 0
            self._ledgers[node] = _Ledger(report)
        return self._ledgers[node]

    def on_records(self, environment: Any, msg: Any, **_kwargs: Any) -> RequestRecords | None:
        """Keep a chunk; returns it on the collector's clock (None for a duplicate)."""
        seq, records = decode_chunk(msg.data)
        ledger = self.ledger(msg.node_id)
        if seq in ledger.seqs:
            log.warning("duplicate records chunk %d from %s ignored", seq, msg.node_id)
            return None
        ledger.seqs.add(seq)
        ledger.parts.append(records)
        ledger.report.chunks += 1
        ledger.report.records += len(records)
        return records.shifted(ledger.report.clock_offset_ns)

    def on_done(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        ledger = self.ledger(msg.node_id)
        ledger.done = True
        ledger.report.declared_chunks = int(msg.data["chunks"])
        ledger.report.declared_records = int(msg.data["records"])
        ledger.report.timed_connects = int(msg.data.get("timed_connects", 0))
        ledger.report.boot_id = str(msg.data["boot_id"])
        if ledger.report.boot_id == self.boot_id:
            ledger.report.clock_offset_ns = 0  # one host, one CLOCK_MONOTONIC
            ledger.report.clock_uncertainty_ns = 0

    def set_clock(self, node: str, offset_ns: int, uncertainty_ns: int | None) -> None:
        report = self.ledger(node).report
        if report.boot_id != self.boot_id:
            report.clock_offset_ns, report.clock_uncertainty_ns = offset_ns, uncertainty_ns

    def mark_lost(self, node: str, reason: str) -> None:
        ledger = self.ledger(node)
        report = ledger.report
        if not report.lost and not ledger.done:
            report.lost, report.reason = True, reason

    def live_workers(self, runner: Any) -> list[str]:
        """Workers the master still counts (not missing) and this collector has not lost."""
        return [
            node
            for node, client in runner.clients.items()
            if getattr(client, "state", "") != "missing" and not self.ledger(node).report.lost
        ]

    def pending(self, expected: set[str]) -> set[str]:
        """Nodes of `expected` (and any that sent records) that have not said `done`."""
        nodes = expected | set(self._ledgers)
        return {n for n in nodes if not self.ledger(n).done and not self.ledger(n).report.lost}

    def wait_done(self, expected: set[str], timeout_s: float) -> set[str]:
        """Wait (cooperatively) for every node's `done`; returns those still missing."""
        deadline = perf_counter_ns() + int(timeout_s * 1e9)
        while (missing := self.pending(expected)) and perf_counter_ns() < deadline:
            gevent.sleep(0.05)
        return missing

    def snapshot(self) -> RequestRecords:
        """Every record so far on the collector's clock (absolute ns), sorted by start."""
        parts = [
            part.shifted(ledger.report.clock_offset_ns)
            for ledger in self._ledgers.values()
            for part in ledger.parts
        ]
        return RequestRecords.concat(parts, t0_ns=0, from_ns=0, to_ns=0)

    def first_start_ns(self) -> int | None:
        """The earliest send time seen so far (the collector's clock)."""
        starts = [
            int(part.start_ns.min()) - ledger.report.clock_offset_ns
            for ledger in self._ledgers.values()
            for part in ledger.parts
            if len(part)
        ]
        return min(starts) if starts else None

    def reports(self) -> list[WorkerReport]:
        """Per node: counts, clock, and why it is lost or incomplete (checked here)."""
        out = []
        for ledger in self._ledgers.values():
            report = ledger.report
            if not report.lost:
                if not ledger.done:
                    report.lost, report.reason = True, "never said it was done (died or cut off)"
                elif report.records != report.declared_records or report.chunks != (
                    report.declared_chunks
                ):
                    report.lost = True
                    report.reason = (
                        f"sent {report.declared_records} records in {report.declared_chunks} "
                        f"chunks, {report.records} in {report.chunks} arrived"
                    )
            out.append(report)
        return out
