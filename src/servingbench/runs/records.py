"""Raw per-request records: the single source of every latency figure servingbench reports.

Locust keeps response times in whole-millisecond buckets; at our ~1 ms latencies that is useless,
so each request's times are kept here in integer nanoseconds from a monotonic clock, with an
outcome code. Stored as one compressed `.npz` per point, with the point's measured interval.

Which requests count where (the one rule the sweep, the report and the notebook share):
- latency figures: requests *started* (intended to start, in open loop) in the measured interval
  [from, to), so a request that straddles the stop still counts with its full latency;
- throughput: requests *completed* in [from, to), divided by its length;
- warm-up: everything before `from`, recorded but never counted.
An interleaved point is measured in slices: its measured interval is the union of `slices`
(each [from, to) of one slice), and the same rule holds inside each of them.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from pathlib import Path

import numpy as np

from servingbench.atomic import atomic_write_bytes

__all__ = ["COLUMNS", "NO_REASON", "UNKNOWN_NS", "Outcome", "RecordBuffer", "RequestRecords"]

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


COLUMNS: tuple[tuple[str, type[np.generic]], ...] = (
    ("start_ns", np.int64),
    ("latency_ns", np.int64),
    ("outcome", np.int8),
    ("intended_ns", np.int64),
    ("server_ns", np.int64),
    ("reason", np.int32),
)
"""Every per-request column with its type: the one schema that records are buffered, shipped,
merged and saved by."""
NO_REASON = -1


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
    reason:      index into `reason_texts` of why it failed (NO_REASON for a success), so the
                 reasons of any subset (the measured requests) can be counted
    """

    start_ns: np.ndarray
    latency_ns: np.ndarray
    outcome: np.ndarray
    intended_ns: np.ndarray
    server_ns: np.ndarray
    from_ns: int
    to_ns: int
    reason: np.ndarray | None = None
    reason_texts: list[str] = field(default_factory=list)
    slices: np.ndarray | None = None
    """Interleaved points: the measured slices, [from, to) per row (same clock as the times);
    from_ns and to_ns then span them all."""

    def __post_init__(self) -> None:
        if self.reason is None:
            self.reason = np.full(self.start_ns.size, NO_REASON, dtype=np.int32)
        if self.slices is not None:
            self.slices = np.asarray(self.slices, dtype=np.int64).reshape(-1, 2)

    def _spans(self) -> np.ndarray:
        """The measured interval as [from, to) rows: the slices, or the one interval."""
        if self.slices is not None:
            return self.slices
        return np.asarray([[self.from_ns, self.to_ns]], dtype=np.int64)

    def _inside(self, times: np.ndarray) -> np.ndarray:
        mask = np.zeros(times.size, dtype=bool)
        for lo, hi in self._spans():
            mask |= (times >= lo) & (times < hi)
        return mask

    def slice(self, index: int) -> RequestRecords:
        """Slice `index` of an interleaved point as a point of its own (one interval)."""
        assert self.slices is not None
        lo, hi = (int(v) for v in self.slices[index])
        return replace(self, from_ns=lo, to_ns=hi, slices=None)

    def __len__(self) -> int:
        return int(self.start_ns.size)

    def columns(self) -> dict[str, np.ndarray]:
        """Every column by name, in `COLUMNS` order and types."""
        return {name: np.asarray(getattr(self, name), dtype=kind) for name, kind in COLUMNS}

    @property
    def reasons(self) -> dict[str, dict[str, int]]:
        """Failure reason text -> count, per outcome label, over these records."""
        assert self.reason is not None
        counts: dict[str, Counter[str]] = {}
        failed = self.reason != NO_REASON
        for code, index in zip(self.outcome[failed], self.reason[failed], strict=True):
            counts.setdefault(Outcome(int(code)).label, Counter())[self.reason_texts[index]] += 1
        return {label: dict(c) for label, c in counts.items()}

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
        return self._inside(self.intended_ns)

    @property
    def duration_s(self) -> float:
        return float(np.clip(np.diff(self._spans(), axis=1), 0, None).sum()) / 1e9

    def select(self, mask: np.ndarray) -> RequestRecords:
        return RequestRecords(
            **{name: column[mask] for name, column in self.columns().items()},
            from_ns=self.from_ns,
            to_ns=self.to_ns,
            reason_texts=self.reason_texts,
            slices=self.slices,
        )

    def shifted(self, offset_ns: int) -> RequestRecords:
        """The same records with every absolute time moved by -`offset_ns` (another clock)."""
        if not offset_ns:
            return self
        return replace(
            self, start_ns=self.start_ns - offset_ns, intended_ns=self.intended_ns - offset_ns
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

    def completed_measured(self) -> np.ndarray:
        """Mask of requests that finished inside the measured interval (throughput's)."""
        mask: np.ndarray = self._inside(self.done_ns) & self.finished
        return mask

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        arrays: dict[str, np.ndarray] = {
            **self.columns(),
            "interval_ns": np.asarray([self.from_ns, self.to_ns], dtype=np.int64),
            "reason_texts": np.frombuffer(json.dumps(self.reason_texts).encode(), dtype=np.uint8),
        }
        if self.slices is not None:
            arrays["slices_ns"] = self.slices
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> RequestRecords:
        with np.load(path) as data:
            interval = data["interval_ns"]
            return cls(
                **{name: data[name] for name, _ in COLUMNS},
                from_ns=int(interval[0]),
                to_ns=int(interval[1]),
                reason_texts=json.loads(data["reason_texts"].tobytes().decode() or "[]"),
                slices=data["slices_ns"] if "slices_ns" in data.files else None,
            )

    @classmethod
    def concat(
        cls, parts: Sequence[RequestRecords], t0_ns: int, from_ns: int, to_ns: int
    ) -> RequestRecords:
        """Merge parts with absolute times into one point's records, times since `t0_ns`.

        Sorts by start, shifts every time by `t0_ns`, sets the measured interval (given in
        the same absolute clock) and merges the parts' reason texts.
        """
        texts: dict[str, int] = {}
        reasons = []
        for part in parts:
            assert part.reason is not None
            index = np.asarray([texts.setdefault(t, len(texts)) for t in part.reason_texts])
            mapped = np.full(len(part), NO_REASON, dtype=np.int32)
            failed = part.reason != NO_REASON
            mapped[failed] = index[part.reason[failed]] if index.size else NO_REASON
            reasons.append(mapped)
        columns = {
            name: np.concatenate([np.empty(0, kind), *(getattr(p, name) for p in parts)])
            for name, kind in COLUMNS
            if name != "reason"
        }
        columns["reason"] = np.concatenate([np.empty(0, np.int32), *reasons])
        order = np.argsort(columns["start_ns"], kind="stable")
        columns = {name: column[order] for name, column in columns.items()}
        columns["start_ns"] = columns["start_ns"] - t0_ns
        columns["intended_ns"] = columns["intended_ns"] - t0_ns
        return cls(
            **columns, from_ns=from_ns - t0_ns, to_ns=to_ns - t0_ns, reason_texts=list(texts)
        )


class RecordBuffer:
    """Collects one process's records in plain lists (cheap appends on the hot path).

    Times are absolute (`perf_counter_ns`); `drain` hands over what was added since the last
    drain, so records can be shipped in chunks while the test runs.
    """

    def __init__(self) -> None:
        self._columns: dict[str, list[int]] = {name: [] for name, _ in COLUMNS}
        self._texts: dict[str, int] = {}
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
        columns = self._columns
        columns["start_ns"].append(start_ns)
        columns["latency_ns"].append(latency_ns)
        columns["outcome"].append(int(outcome))
        columns["intended_ns"].append(start_ns if intended_ns is None else intended_ns)
        columns["server_ns"].append(server_ns)
        if outcome == Outcome.OK:
            columns["reason"].append(NO_REASON)
        else:
            text = reason[:300]
            columns["reason"].append(self._texts.setdefault(text, len(self._texts)))
        self.total += 1

    def __len__(self) -> int:
        return len(self._columns["start_ns"])

    def drain(self) -> RequestRecords:
        """Everything added since the last drain, as absolute-time records (interval unset)."""
        records = RequestRecords(
            **{name: np.asarray(self._columns[name], dtype=kind) for name, kind in COLUMNS},
            from_ns=0,
            to_ns=0,
            reason_texts=list(self._texts),
        )
        self._columns = {name: [] for name, _ in COLUMNS}
        return records
