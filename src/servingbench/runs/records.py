"""Raw per-request records: the single source of every latency figure servingbench reports.

Locust keeps response times in whole-millisecond buckets; at our ~1 ms latencies that is useless,
so each request's start and duration are kept here in integer nanoseconds from a monotonic
clock, with an outcome code. Stored as one compressed `.npz` per point (about 10 bytes a request).
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

__all__ = ["Outcome", "RecordBuffer", "RequestRecords"]


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

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass
class RequestRecords:
    """Column arrays, one entry per request, ordered by start time.

    start_ns:   send time in ns since the point's t0 (monotonic clock)
    latency_ns: time from send to a fully read, validated-parsable response
    outcome:    `Outcome` code
    warmup:     True for requests that started inside the warm-up period (excluded from stats)
    reasons:    error reason text -> count, per outcome label (kept apart: reasons vary a lot)
    """

    start_ns: np.ndarray
    latency_ns: np.ndarray
    outcome: np.ndarray
    warmup: np.ndarray
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.start_ns.size)

    def measured(self) -> RequestRecords:
        """Only the requests after warm-up."""
        keep = ~self.warmup
        return RequestRecords(
            self.start_ns[keep],
            self.latency_ns[keep],
            self.outcome[keep],
            self.warmup[keep],
            self.reasons,
        )

    @property
    def ok(self) -> np.ndarray:
        mask: np.ndarray = self.outcome == Outcome.OK
        return mask

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            start_ns=self.start_ns.astype(np.int64),
            latency_ns=self.latency_ns.astype(np.int64),
            outcome=self.outcome.astype(np.int8),
            warmup=self.warmup.astype(bool),
            reasons=np.frombuffer(json.dumps(self.reasons).encode(), dtype=np.uint8),
        )
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def concat(cls, parts: Sequence[RequestRecords], warmup_ns: int) -> RequestRecords:
        """Merge per-process parts with absolute start times into one point's records.

        Sorts by start, makes the earliest start time zero, marks `start < warmup_ns` as
        warm-up and adds up the reason counts.
        """

        def cat(column: str, dtype: type) -> np.ndarray:
            return np.concatenate([np.empty(0, dtype), *(getattr(p, column) for p in parts)])

        start = cat("start_ns", np.int64)
        order = np.argsort(start, kind="stable")
        start = (start - (start.min() if start.size else 0))[order]
        reasons: dict[str, Counter[str]] = {}
        for part in parts:
            for label, counts in part.reasons.items():
                reasons.setdefault(label, Counter()).update(counts)
        return cls(
            start_ns=start,
            latency_ns=cat("latency_ns", np.int64)[order],
            outcome=cat("outcome", np.int8)[order],
            warmup=start < warmup_ns,
            reasons={label: dict(counts) for label, counts in reasons.items()},
        )

    @classmethod
    def load(cls, path: Path) -> RequestRecords:
        with np.load(path) as data:
            return cls(
                start_ns=data["start_ns"],
                latency_ns=data["latency_ns"],
                outcome=data["outcome"],
                warmup=data["warmup"],
                reasons=json.loads(data["reasons"].tobytes().decode() or "{}"),
            )


class RecordBuffer:
    """Collects records during a point in plain lists (cheap appends on the hot path)."""

    def __init__(self, t0_ns: int, warmup_ns: int) -> None:
        self.t0_ns = t0_ns
        self.warmup_end_ns = t0_ns + warmup_ns
        self._start: list[int] = []
        self._latency: list[int] = []
        self._outcome: list[int] = []
        self._reasons: dict[str, Counter[str]] = {}

    def add(self, start_ns: int, latency_ns: int, outcome: Outcome, reason: str = "") -> None:
        self._start.append(start_ns)
        self._latency.append(latency_ns)
        self._outcome.append(int(outcome))
        if outcome != Outcome.OK:
            self._reasons.setdefault(outcome.label, Counter())[reason[:300]] += 1

    def __len__(self) -> int:
        return len(self._start)

    def freeze(self) -> RequestRecords:
        start = np.asarray(self._start, dtype=np.int64)
        order = np.argsort(start, kind="stable")
        start = start[order]
        return RequestRecords(
            start_ns=start - self.t0_ns,
            latency_ns=np.asarray(self._latency, dtype=np.int64)[order],
            outcome=np.asarray(self._outcome, dtype=np.int8)[order],
            warmup=start < self.warmup_end_ns,
            reasons={k: dict(v) for k, v in self._reasons.items()},
        )
