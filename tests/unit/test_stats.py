"""Percentile and window arithmetic on records whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servingbench.runs.records import Outcome, RecordBuffer, RequestRecords
from servingbench.runs.stats import (
    Window,
    is_stable,
    measured_span_s,
    outcome_counts,
    relative_spread,
    summarize,
    windows,
)

MS = 1_000_000


def _records(latency_ms: list[float], gap_ms: float = 1.0, warmup_n: int = 0) -> RequestRecords:
    n = len(latency_ms)
    start = (np.arange(n) * gap_ms * MS).astype(np.int64)
    warm = np.zeros(n, dtype=bool)
    warm[:warmup_n] = True
    return RequestRecords(
        start_ns=start,
        latency_ns=(np.asarray(latency_ms) * MS).astype(np.int64),
        outcome=np.zeros(n, dtype=np.int8),
        warmup=warm,
    )


def test_percentiles_of_1_to_100_ms() -> None:
    summary = summarize(_records([float(v) for v in range(1, 101)]))
    assert summary.requests == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.p25_ms == pytest.approx(25.75)
    assert summary.avg_ms == pytest.approx(50.5)
    assert summary.min_ms == 1.0
    assert summary.max_ms == 100.0


def test_microsecond_resolution_is_kept() -> None:
    summary = summarize(_records([0.123, 0.124, 0.125]))
    assert summary.p50_ms == pytest.approx(0.124)


def test_warmup_requests_are_excluded() -> None:
    summary = summarize(_records([1000.0] * 10 + [1.0] * 90, warmup_n=10))
    assert summary.requests == 90
    assert summary.max_ms == 1.0


def test_errors_count_in_rate_but_not_latency() -> None:
    records = _records([1.0, 2.0, 500.0, 3.0])
    records.outcome[2] = Outcome.HTTP_STATUS
    summary = summarize(records)
    assert summary.errors == 1
    assert summary.error_rate == pytest.approx(0.25)
    assert summary.max_ms == 3.0


def test_throughput_over_explicit_duration() -> None:
    assert summarize(_records([1.0] * 50), duration_s=2.0).rps == pytest.approx(25.0)


def test_empty_records_give_nan_not_crash() -> None:
    summary = summarize(_records([]))
    assert summary.requests == 0
    assert math.isnan(summary.p50_ms)


def test_windows_count_completions_per_window() -> None:
    # 1 request per ms, each 0.5 ms long, over 3 s -> three whole 1 s windows of ~1000 requests
    records = _records([0.5] * 3000, gap_ms=1.0)
    wins = windows(records, 1.0)
    assert len(wins) == 2  # the third is cut short by the last completion, so only 2 are whole
    assert all(w.requests == 1000 for w in wins)
    assert all(w.rps == pytest.approx(1000.0) for w in wins)
    assert all(w.p50_ms == pytest.approx(0.5) for w in wins)


def test_windows_record_p99_of_their_successful_requests() -> None:
    # window [0, 1 s): answers of 1..100 ms and one failed 500 ms request; [1 s, 2 s): nothing;
    # a last answer at 2.05 s makes both windows whole
    latency = [float(v) for v in range(1, 101)] + [500.0, 2050.0]
    records = _records(latency, gap_ms=0.0)
    records.outcome[100] = Outcome.TIMEOUT
    first, second = windows(records, 1.0)
    assert first.requests == 101
    assert first.p99_ms == pytest.approx(99.01)  # numpy's p99 of 1..100; the error not counted
    assert first.p50_ms == pytest.approx(50.5)
    assert second.requests == 0
    assert math.isnan(second.p99_ms)
    assert math.isnan(second.p50_ms)


def test_relative_spread() -> None:
    assert relative_spread([90.0, 100.0, 110.0]) == pytest.approx(0.2)
    assert relative_spread([100.0, float("nan"), 110.0]) == pytest.approx(10 / 105)
    assert math.isnan(relative_spread([100.0]))
    assert math.isnan(relative_spread([0.0, 0.0]))


def test_stability_uses_the_same_spread_as_the_report() -> None:
    tail = [_win(100, 1.0), _win(100, 1.0), _win(109, 1.0)]
    assert relative_spread([w.rps for w in tail]) <= 0.10
    assert is_stable(tail)
    assert not is_stable(tail, tolerance=relative_spread([w.rps for w in tail]) * 0.99)
    assert not is_stable([_win(100, 1.0), _win(100, float("nan")), _win(100, 1.0)])


def test_outcome_counts_cover_measured_requests_only() -> None:
    records = _records([1.0] * 10, warmup_n=4)
    records.outcome[[0, 1, 5]] = Outcome.TIMEOUT  # two in the warm-up
    records.outcome[[6, 7]] = Outcome.HTTP_STATUS
    assert outcome_counts(records) == {"http-status": 2, "timeout": 1}
    assert outcome_counts(records, include_ok=True) == {"ok": 3, "http-status": 2, "timeout": 1}


def test_measured_span_runs_from_warmup_end_to_last_answer() -> None:
    records = _records([5.0] * 10, gap_ms=10.0, warmup_n=3)  # last answer at 95 ms
    assert measured_span_s(records, warmup_s=0.025) == pytest.approx(0.070)
    assert measured_span_s(_records([]), warmup_s=1.0) == 0.0


def _win(rps: float, p50: float) -> Window:
    return Window(0.0, 1.0, int(rps), rps, p50)


def test_stable_when_last_three_agree_within_ten_percent() -> None:
    assert is_stable([_win(50, 9), _win(100, 1.0), _win(104, 1.05), _win(98, 1.02)])


def test_unstable_throughput_or_latency() -> None:
    assert not is_stable([_win(100, 1.0), _win(100, 1.0), _win(80, 1.0)])
    assert not is_stable([_win(100, 1.0), _win(100, 1.0), _win(100, 1.5)])


def test_too_few_windows_are_not_stable() -> None:
    assert not is_stable([_win(100, 1.0), _win(100, 1.0)])


def test_record_buffer_orders_and_marks_warmup(tmp_path: pytest.TempPathFactory) -> None:
    buf = RecordBuffer(t0_ns=1_000, warmup_ns=500)
    buf.add(2_000, 10, Outcome.OK)
    buf.add(1_200, 20, Outcome.TIMEOUT, "timed out")
    buf.add(1_600, 30, Outcome.OK)
    records = buf.freeze()
    assert records.start_ns.tolist() == [200, 600, 1000]
    assert records.latency_ns.tolist() == [20, 30, 10]
    assert records.warmup.tolist() == [True, False, False]
    assert records.reasons == {"timeout": {"timed out": 1}}
    path = tmp_path / "r.npz"  # type: ignore[operator]
    records.save(path)
    loaded = RequestRecords.load(path)
    assert loaded.latency_ns.tolist() == [20, 30, 10]
    assert loaded.reasons == records.reasons
