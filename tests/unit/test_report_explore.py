"""The notebook's error table: measured counts, and a reason column that says what it covers."""

from __future__ import annotations

import numpy as np
import pytest

from servingbench.report.explore import TOP_REASON, errors_by_outcome
from servingbench.runs.records import UNKNOWN_NS, Outcome, RequestRecords


def _records() -> RequestRecords:
    """Ten requests, the first four in the warm-up; timeouts in both periods."""
    outcome = np.zeros(10, dtype=np.int8)
    outcome[[0, 1, 2, 5]] = Outcome.TIMEOUT
    outcome[6] = Outcome.CONNECTION
    start_ns = np.arange(10, dtype=np.int64)
    return RequestRecords(
        start_ns=start_ns,
        latency_ns=np.ones(10, dtype=np.int64),
        outcome=outcome,
        intended_ns=start_ns,
        server_ns=np.full(10, UNKNOWN_NS, dtype=np.int64),
        from_ns=4,  # requests meant to start before this are the warm-up
        to_ns=10,
        # reasons are kept per outcome over every request: the warm-up's three timeouts too
        reasons={"timeout": {"read timed out": 3, "deadline": 1}, "connection": {"reset": 1}},
    )


def test_counts_are_measured_requests_and_reason_says_it_includes_warmup() -> None:
    table = errors_by_outcome(_records()).set_index("outcome")
    assert table["requests"].to_dict() == {"ok": 4, "timeout": 1, "connection": 1}
    assert table["share_pct"].sum() == pytest.approx(100.0)
    assert "incl. warm-up" in TOP_REASON
    assert list(table.columns) == ["requests", "share_pct", TOP_REASON]
    # the warm-up's reason wins: the column's label is what keeps this from misleading
    assert table.loc["timeout", TOP_REASON] == "read timed out"
    assert table.loc["ok", TOP_REASON] == ""
