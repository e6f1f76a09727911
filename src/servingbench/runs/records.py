"""Raw per-request records: the single source of every latency figure servingbench reports.

Locust keeps response times in whole-millisecond buckets; at our ~1 ms latencies that is useless,
so each request's times are kept here in integer nanoseconds from a monotonic clock, with an
outcome code. Stored as one compressed `.npz` per point, with the point's measured interval.

Which requests count where (the one rule the sweep, the report and the notebook share):
- latency figures: requests *started* (intended to start, in open loop) in the measured interval
  [from, to), so a request that straddles the stop still counts with its full latency;
- throughput: requests *completed* in [from, to), divided by its length;
- warm-up: everything before `from`, recorded but never counted.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np

from servingbench.atomic import atomic_write_bytes

__all__ = ["UNKNOWN_NS", "Outcome", "RecordBuffer", "RequestRecords"]

UNKNOWN_NS = -1
"""A server time the response did not report."""


class Outcome(IntEnum):
    """One error classification across protocols (HTTP and gRPC alike)."""

    OK = 0
    HTTP_STATUS = 1  # an HTTP response with a non-2xx status
    GRPC_STATUS = 2  # a gRPC call that ended with a non-OK status code
    TIMEOUT = 3
    CONNECTION = 4  # refused, reset, closed before a response
    WRONG_ANSWER = 5  # a response that parsed but did not hold the expected prediction
    MALFORMED = 6  # a 2xx response whose body could not be parsed
    OTHER = 7
    INCOMPLETE = 8  # still in flight when the point stopped: its latency is a lower bound
    DROPPED = 9  # open loop: an arrival no free slot could take, never sent

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass
class RequestRecords:
    """Column arrays, one entry per request, ordered by start time; times in ns since t0.

    start_ns:    when it was sent
    latency_ns:  send to a fully read response (service time); for INCOMPLETE, the time it had
                 been in flight when abandoned (a censored lower bound)
    outcome:     `Outcome` code
    intended_ns: when it was meant to be sent (open-loop schedule); equal to start_ns in a
                 closed loop, where every request is sent as soon as its user is free
    server_ns:   the server's own time for it (a `Server-Timing` header), or UNKNOWN_NS
    from_ns, to_ns: the measured interval (see the module docstring)
    reasons:     error reason text -> count, per outcome label (kept apart: reasons vary a lot)
    """

    start_ns: np.ndarray
    latency_ns: np.ndarray
    outcome: np.ndarray
    intended_ns: np.ndarray
    server_ns: np.ndarray
    from_ns: int
    to_ns: int
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.start_ns.size)

    @property
    def done_ns(self) -> np.ndarray:
        """Completion times (for INCOMPLETE: when it was abandoned)."""
        done: np.ndarray = self.start_ns + self.latency_ns
        return done

    @property
    def response_ns(self) -> np.ndarray:
        """Completion minus intended start: latency as the schedule's caller saw it."""
        response: np.ndarray = self.done_ns - self.intended_ns
        return response

    @property
    def ok(self) -> np.ndarray:
        mask: np.ndarray = self.outcome == Outcome.OK
        return mask

    @property
    def warmup(self) -> np.ndarray:
        """Requests meant to start before the measured interval."""
        mask: np.ndarray = self.intended_ns < self.from_ns
        return mask

    @property
    def measured_mask(self) -> np.ndarray:
        """Requests meant to start inside the measured interval: the latency population."""
        mask: np.ndarray = (self.intended_ns >= self.from_ns) & (self.intended_ns < self.to_ns)
        return mask

    @property
    def duration_s(self) -> float:
        return max(0, self.to_ns - self.from_ns) / 1e9

    def select(self, mask: np.ndarray) -> RequestRecords:
        return RequestRecords(
            self.start_ns[mask],
            self.latency_ns[mask],
            self.outcome[mask],
            self.intended_ns[mask],
            self.server_ns[mask],
            self.from_ns,
            self.to_ns,
            self.reasons,
        )

    def measured(self) -> RequestRecords:
        """Only the requests meant to start in the measured interval."""
        return self.select(self.measured_mask)

    @property
    def finished(self) -> np.ndarray:
        """Requests that were sent and ended (answered, failed or timed out)."""
        mask: np.ndarray = (self.outcome != Outcome.INCOMPLETE) & (self.outcome != Outcome.DROPPED)
        return mask

    def completed_in(self, lo_ns: int, hi_ns: int) -> np.ndarray:
        """Mask of requests that finished in [lo, hi)."""
        done = self.done_ns
        mask: np.ndarray = (done >= lo_ns) & (done < hi_ns) & self.finished
        return mask

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            start_ns=self.start_ns.astype(np.int64),
            latency_ns=self.latency_ns.astype(np.int64),
            outcome=self.outcome.astype(np.int8),
            intended_ns=self.intended_ns.astype(np.int64),
            server_ns=self.server_ns.astype(np.int64),
            interval_ns=np.asarray([self.from_ns, self.to_ns], dtype=np.int64),
            reasons=np.frombuffer(json.dumps(self.reasons).encode(), dtype=np.uint8),
        )
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> RequestRecords:
        with np.load(path) as data:
            interval = data["interval_ns"]
            return cls(
                start_ns=data["start_ns"],
                latency_ns=data["latency_ns"],
                outcome=data["outcome"],
                intended_ns=data["intended_ns"],
                server_ns=data["server_ns"],
                from_ns=int(interval[0]),
                to_ns=int(interval[1]),
                reasons=json.loads(data["reasons"].tobytes().decode() or "{}"),
            )

    @classmethod
    def concat(
        cls, parts: Sequence[RequestRecords], t0_ns: int, from_ns: int, to_ns: int
    ) -> RequestRecords:
        """Merge parts with absolute times into one point's records, times since `t0_ns`.

        Sorts by start, shifts every time by `t0_ns`, sets the measured interval (given in
        the same absolute clock) and adds up the reason counts.
        """

        def cat(column: str, dtype: type) -> np.ndarray:
            return np.concatenate([np.empty(0, dtype), *(getattr(p, column) for p in parts)])

        start = cat("start_ns", np.int64)
        order = np.argsort(start, kind="stable")
        server = cat("server_ns", np.int64)[order]
        reasons: dict[str, Counter[str]] = {}
        for part in parts:
            for label, counts in part.reasons.items():
                reasons.setdefault(label, Counter()).update(counts)
        return cls(
            start_ns=start[order] - t0_ns,
            latency_ns=cat("latency_ns", np.int64)[order],
            outcome=cat("outcome", np.int8)[order],
            intended_ns=cat("intended_ns", np.int64)[order] - t0_ns,
            server_ns=server,
            from_ns=from_ns - t0_ns,
            to_ns=to_ns - t0_ns,
            reasons={label: dict(counts) for label, counts in reasons.items()},
        )


class RecordBuffer:
    """Collects one process's records in plain lists (cheap appends on the hot path).

    Times are absolute (`perf_counter_ns`); `drain` hands over what was added since the last
    drain, so records can be shipped in chunks while the test runs.
    """

    def __init__(self) -> None:
        self._start: list[int] = []
        self._latency: list[int] = []
        self._outcome: list[int] = []
        self._intended: list[int] = []
        self._server: list[int] = []
        self._reasons: dict[str, Counter[str]] = {}
        self.total = 0

    def add(
        self,
        start_ns: int,
        latency_ns: int,
        outcome: Outcome,
        reason: str = "",
        intended_ns: int | None = None,
        server_ns: int = UNKNOWN_NS,
    ) -> None:
        self._start.append(start_ns)
        self._latency.append(latency_ns)
        self._outcome.append(int(outcome))
        self._intended.append(start_ns if intended_ns is None else intended_ns)
        self._server.append(server_ns)
        self.total += 1
        if outcome != Outcome.OK:
            self._reasons.setdefault(outcome.label, Counter())[reason[:300]] += 1

    def __len__(self) -> int:
        return len(self._start)

    def drain(self) -> RequestRecords:
        """Everything added since the last drain, as absolute-time records (interval unset)."""
        start = np.asarray(self._start, dtype=np.int64)
        records = RequestRecords(
            start_ns=start,
            latency_ns=np.asarray(self._latency, dtype=np.int64),
            outcome=np.asarray(self._outcome, dtype=np.int8),
            intended_ns=np.asarray(self._intended, dtype=np.int64),
            server_ns=np.asarray(self._server, dtype=np.int64),
            from_ns=0,
            to_ns=0,
            reasons={k: dict(v) for k, v in self._reasons.items()},
        )
        self._start, self._latency, self._outcome, self._intended, self._server = [], [], [], [], []
        self._reasons = {}
        return records
