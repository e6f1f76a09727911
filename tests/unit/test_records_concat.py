"""`RequestRecords.concat`: per-process parts with absolute times become one point's records."""

from __future__ import annotations

import numpy as np

from servingbench.runs.records import Outcome, RecordBuffer, RequestRecords


def _part(starts: list[int], outcome: Outcome = Outcome.OK, reason: str = "") -> RequestRecords:
    buffer = RecordBuffer(t0_ns=0, warmup_ns=0)
    for start in starts:
        buffer.add(start, 1_000 + start % 7, outcome, reason)
    return buffer.freeze()


def test_concat_sorts_zeroes_marks_warmup_and_merges_reasons() -> None:
    base = 5_000_000_000_000
    a = _part([base + 30, base + 10], Outcome.HTTP_STATUS, "HTTP 503")
    b = _part([base + 20, base + 40], Outcome.HTTP_STATUS, "HTTP 503")
    c = _part([base + 25], Outcome.TIMEOUT, "timeout")
    merged = RequestRecords.concat([a, b, c], warmup_ns=20)
    assert merged.start_ns.tolist() == [0, 10, 15, 20, 30]
    assert merged.latency_ns.tolist() == [1_000 + (base + s) % 7 for s in (10, 20, 25, 30, 40)]
    http, timeout = Outcome.HTTP_STATUS, Outcome.TIMEOUT
    assert merged.outcome.tolist() == [http, http, timeout, http, http]
    assert merged.warmup.tolist() == [True, True, True, False, False]
    assert merged.reasons == {"http-status": {"HTTP 503": 4}, "timeout": {"timeout": 1}}
    assert merged.start_ns.dtype == np.int64


def test_concat_of_nothing_is_empty() -> None:
    merged = RequestRecords.concat([], warmup_ns=0)
    assert len(merged) == 0
    assert RequestRecords.concat([_part([])], warmup_ns=0).outcome.dtype == np.int8
