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
        # the warm-up's three timeouts read "read timed out", the measured one "deadline"
        reason=np.asarray([0, 0, 0, -1, -1, 1, 2, -1, -1, -1], dtype=np.int32),
        reason_texts=["read timed out", "deadline", "reset"],
    )


def test_counts_and_reasons_are_of_measured_requests() -> None:
    table = errors_by_outcome(_records()).set_index("outcome")
    assert table["requests"].to_dict() == {"ok": 4, "timeout": 1, "connection": 1}
    assert table["share_pct"].sum() == pytest.approx(100.0)
    assert list(table.columns) == ["requests", "share_pct", TOP_REASON]
    # the warm-up's three timeouts are not the measured interval's reason
    assert table.loc["timeout", TOP_REASON] == "deadline"
    assert table.loc["ok", TOP_REASON] == ""
