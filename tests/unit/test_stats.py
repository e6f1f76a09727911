"""Summary, window and stability arithmetic on records whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from servingbench.runs.records import UNKNOWN_NS, Outcome, RequestRecords
from servingbench.runs.stats import (
    PERCENTILES,
    LatencySummary,
    MeasurePlan,
    Stability,
    Window,
    is_stable,
    outcome_counts,
    quantile_upper_bound,
    relative_spread,
    samples_to_bound,
    summarize,
    windows,
)

MS = 1_000_000


def _records(
    latency_ms: list[float],
    gap_ms: float = 1.0,
    interval_ms: tuple[float, float] | None = None,
    lateness_ms: float = 0.0,
) -> RequestRecords:
    """Request i meant to start at i * gap, sent `lateness_ms` later; interval [from, to) in ms
    (default: from the first request to one gap after the last)."""
    n = len(latency_ms)
    intended = (np.arange(n) * gap_ms * MS).astype(np.int64)
    lo, hi = interval_ms if interval_ms is not None else (0.0, n * gap_ms)
    return RequestRecords(
        start_ns=intended + round(lateness_ms * MS),
        latency_ns=(np.asarray(latency_ms, dtype=float) * MS).astype(np.int64),
        outcome=np.zeros(n, dtype=np.int8),
        intended_ns=intended,
        server_ns=np.full(n, UNKNOWN_NS, dtype=np.int64),
        from_ns=round(lo * MS),
        to_ns=round(hi * MS),
    )


def test_percentiles_of_1_to_100_ms() -> None:
    """numpy's linear percentiles, p99.9 included, of latencies 1..100 ms."""
    summary = summarize(_records([float(v) for v in range(1, 101)]))
    assert summary.requests == 100
    assert summary.ok == 100
    assert summary.p25_ms == pytest.approx(25.75)
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p90_ms == pytest.approx(90.1)
    assert summary.p95_ms == pytest.approx(95.05)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.p999_ms == pytest.approx(99.901)
    assert summary.avg_ms == pytest.approx(50.5)
    assert (summary.min_ms, summary.max_ms) == (1.0, 100.0)
    # completions in [0, 100 ms): request i ends at 2i + 1 ms, so i = 0..49
    assert summary.rps == pytest.approx(50 / 0.1)
    assert summary.duration_s == pytest.approx(0.1)


def test_summary_fields_are_the_percentiles_plus_the_rest() -> None:
    """Every percentile of PERCENTILES has its column; p99.9 is `p999_ms`."""
    assert PERCENTILES == (25, 50, 90, 95, 99, 99.9)
    names = set(LatencySummary.model_fields)
    assert {"p25_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms"} <= names
    assert {"dropped", "incomplete", "effective_concurrency", "lateness_p99_ms"} <= names


def test_microsecond_resolution_is_kept() -> None:
    """Sub-millisecond latencies are not rounded into Locust's whole-ms buckets."""
    summary = summarize(_records([0.123, 0.124, 0.125]))
    assert summary.p50_ms == pytest.approx(0.124)


def test_warmup_is_left_out_of_latency_but_its_completions_count() -> None:
    """Latency: requests meant to start in [from, to). Throughput: completions in it."""
    # 10 slow warm-up requests (0..9 ms, each 1 s long: all finish inside the interval),
    # then 90 fast ones from 10 ms; the interval is [10 ms, 1010 ms)
    records = _records([1000.0] * 10 + [1.0] * 90, interval_ms=(10.0, 1010.0))
    summary = summarize(records)
    assert summary.requests == 90
    assert summary.max_ms == 1.0
    assert summary.rps == pytest.approx(100 / 1.0)


def test_a_request_straddling_the_stop_counts_for_latency_not_throughput() -> None:
    """Its whole latency is known and counted; it did not complete in the interval."""
    records = _records([1.0, 1.0, 50.0], gap_ms=10.0, interval_ms=(0.0, 30.0))
    summary = summarize(records)
    assert summary.requests == 3
    assert summary.max_ms == 50.0
    assert summary.rps == pytest.approx(2 / 0.03)


def test_errors_incomplete_and_dropped_are_counted_apart() -> None:
    """Dropped arrivals were never sent: not requests. Incomplete ones are failures, not errors."""
    records = _records([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 500.0, 600.0, 700.0, 0.0])
    records.outcome[6] = Outcome.HTTP_STATUS
    records.outcome[7] = Outcome.TIMEOUT
    records.outcome[8] = Outcome.INCOMPLETE
    records.outcome[9] = Outcome.DROPPED
    summary = summarize(records)
    assert summary.requests == 9
    assert summary.ok == 6
    assert summary.errors == 2
    assert summary.incomplete == 1
    assert summary.dropped == 1
    assert summary.error_rate == pytest.approx(3 / 9)
    assert summary.max_ms == 6.0  # failures never count as latency
    assert outcome_counts(records) == {
        "http-status": 1,
        "timeout": 1,
        "incomplete": 1,
        "dropped": 1,
    }


def test_open_loop_response_service_and_lateness() -> None:
    """Response time runs from the intended start; service from the send; lateness between."""
    records = _records([5.0] * 10, gap_ms=10.0, lateness_ms=2.0)
    records.outcome[9] = Outcome.INCOMPLETE
    records.start_ns[9] += 50 * MS  # an abandoned request's lateness is not the generator's
    summary = summarize(records)
    assert summary.p50_ms == pytest.approx(7.0)
    assert summary.p99_ms == pytest.approx(7.0)
    assert summary.service_p50_ms == pytest.approx(5.0)
    assert summary.service_avg_ms == pytest.approx(5.0)
    assert summary.lateness_p50_ms == pytest.approx(2.0)
    assert summary.lateness_p99_ms == pytest.approx(2.0)
    assert summary.lateness_max_ms == pytest.approx(2.0)


def test_effective_concurrency_is_littles_law() -> None:
    """Four users back to back at 10 ms each keep four requests in flight."""
    latency, users, n = 10.0, 4, 100  # each user sends 100 requests: 1 s
    start = np.concatenate([np.arange(n) * latency * MS + u * MS for u in range(users)])
    records = RequestRecords(
        start_ns=start.astype(np.int64),
        latency_ns=np.full(start.size, latency * MS, dtype=np.int64),
        outcome=np.zeros(start.size, dtype=np.int8),
        intended_ns=start.astype(np.int64),
        server_ns=np.full(start.size, UNKNOWN_NS, dtype=np.int64),
        from_ns=0,
        to_ns=round(1000 * MS),
    )
    summary = summarize(records)
    # the last answers of three users land just after 1 s: 396 of 400 count
    assert summary.rps == pytest.approx(396.0)
    assert summary.effective_concurrency == pytest.approx(396.0 * latency / 1000)
    assert summary.effective_concurrency == pytest.approx(users, rel=0.02)


def test_effective_concurrency_counts_failed_requests_on_both_sides() -> None:
    """Half the requests time out after 90 ms, the other half answer in 10 ms: the users are
    busy with both, so Little's law needs the mean of every finished request (50 ms), not of
    the successful ones (10 ms), beside the req/s of every finished request."""
    users, n = 4, 20  # alternating 10 ms answers and 90 ms timeouts: 1 s per user
    latency = np.tile([10 * MS, 90 * MS], n // 2)
    start = np.concatenate([np.cumsum(np.r_[0, latency[:-1]]) + u * MS for u in range(users)])
    outcome = np.tile([Outcome.OK, Outcome.TIMEOUT], users * n // 2).astype(np.int8)
    records = RequestRecords(
        start_ns=start.astype(np.int64),
        latency_ns=np.tile(latency, users).astype(np.int64),
        outcome=outcome,
        intended_ns=start.astype(np.int64),
        server_ns=np.full(start.size, UNKNOWN_NS, dtype=np.int64),
        from_ns=0,
        to_ns=round(1010 * MS),
    )
    summary = summarize(records)
    assert summary.effective_concurrency == pytest.approx(users, rel=0.05)


def test_empty_records_give_nan_not_a_crash() -> None:
    """A point without a measured request still has a summary, all NaN."""
    summary = summarize(_records([]))
    assert summary.requests == 0
    for value in (
        summary.p50_ms,
        summary.p999_ms,
        summary.error_rate,
        summary.service_p99_ms,
        summary.lateness_max_ms,
        summary.effective_concurrency,
    ):
        assert math.isnan(value)


def test_windows_count_completions_per_window() -> None:
    """1 request per ms, each 0.5 ms long, over [0, 3 s): three whole windows of 1000."""
    records = _records([0.5] * 3000, gap_ms=1.0, interval_ms=(0.0, 3000.0))
    wins = windows(records, 1.0)
    assert [w.requests for w in wins] == [1000, 1000, 1000]
    assert [(w.start_s, w.end_s) for w in wins] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert all(w.rps == pytest.approx(1000.0) for w in wins)
    assert all(w.p50_ms == pytest.approx(0.5) for w in wins)
    # a trailing partial window would understate throughput: 3 s holds four of 0.7 s
    assert len(windows(records, 0.7)) == 4
    # a point still running: windows up to `end_ns`
    assert len(windows(records, 1.0, end_ns=round(2500 * MS))) == 2
    assert windows(records, 0.0) == []


def test_windows_record_p50_and_p99_of_their_successful_requests() -> None:
    """A failed request counts as a completion but never as latency; an empty window is NaN."""
    # window [0, 1 s): answers of 1..100 ms and one failed 500 ms request; [1 s, 2 s): nothing
    latency = [float(v) for v in range(1, 101)] + [500.0]
    records = _records(latency, gap_ms=0.0, interval_ms=(0.0, 2000.0))
    records.outcome[100] = Outcome.TIMEOUT
    first, second = windows(records, 1.0)
    assert first.requests == 101
    assert first.p99_ms == pytest.approx(99.01)
    assert first.p50_ms == pytest.approx(50.5)
    assert second.requests == 0
    assert math.isnan(second.p99_ms)
    assert math.isnan(second.p50_ms)


def test_relative_spread() -> None:
    """(max - min) / mean of the finite values; NaN when nothing can be seen."""
    assert relative_spread([90.0, 100.0, 110.0]) == pytest.approx(0.2)
    assert relative_spread([100.0, float("nan"), 110.0]) == pytest.approx(10 / 105)
    assert math.isnan(relative_spread([100.0]))
    assert math.isnan(relative_spread([0.0, 0.0]))


def _win(rps: float, p50: float = 1.0, p99: float = 2.0) -> Window:
    """A 2 s window, every request successful."""
    n = int(2 * rps)
    return Window(start_s=0.0, end_s=2.0, requests=n, ok=n, rps=rps, p50_ms=p50, p99_ms=p99)


def test_stability_defaults_are_perf_analyzers_with_a_wider_p99() -> None:
    """Three windows; 10 % on req/s and p50, 25 % on p99 (few samples per window)."""
    rule = Stability()
    assert (rule.windows, rule.rps, rule.p50, rule.p99) == (3, 0.10, 0.10, 0.25)


@pytest.mark.parametrize(
    ("last", "stable"),
    [
        (_win(109), True),  # req/s spread 9/103 = 8.7 %
        (_win(112), False),  # 12/104 = 11.5 %
        (_win(100, p50=1.09), True),
        (_win(100, p50=1.15), False),  # p50 spread 14 %
        (_win(100, p99=2.5), True),  # p99 spread 23 %: within its own 25 %
        (_win(100, p99=2.7), False),  # 31 %
        (_win(100, p50=float("nan")), False),  # a window without a success shows nothing
    ],
)
def test_each_quantity_has_its_own_tolerance(last: Window, stable: bool) -> None:
    """req/s, p50 and p99 must each agree over the last three windows."""
    assert is_stable([_win(100), _win(100), last]) is stable


def test_only_the_last_windows_count() -> None:
    """An early ramp-up does not keep a point from settling."""
    wins = [_win(10, 9.0, 50.0), _win(100), _win(104), _win(98)]
    assert is_stable(wins)
    spreads = Stability().spreads(wins)
    assert spreads["rps"] == pytest.approx(6 / (302 / 3))
    assert spreads["p50"] == 0.0
    assert not is_stable(wins[:2])  # too few windows cannot show stability
    assert is_stable(wins[2:], Stability(windows=2, min_point_ok=400))
    assert not is_stable(wins, Stability(rps=0.01))


def test_rule_and_plan_validate_their_bounds() -> None:
    """A rule over one window, or a zero window, could never mean anything."""
    with pytest.raises(ValidationError):
        Stability(windows=1)
    with pytest.raises(ValidationError):
        Stability(p99=0)
    with pytest.raises(ValidationError):
        MeasurePlan(window_s=0)
    plan = MeasurePlan()
    assert (plan.warmup_s, plan.window_s, plan.max_duration_s) == (1.0, 2.0, 12.0)
    assert plan.until_stable
    assert plan.stability == Stability()


def test_outcome_counts_cover_measured_requests_only() -> None:
    """Warm-up failures are not the measured point's failures."""
    records = _records([1.0] * 10, interval_ms=(4.0, 10.0))
    records.outcome[[0, 1, 5]] = Outcome.TIMEOUT  # two in the warm-up
    records.outcome[[6, 7]] = Outcome.HTTP_STATUS
    assert outcome_counts(records) == {"http-status": 2, "timeout": 1}
    assert outcome_counts(records, include_ok=True) == {"ok": 3, "http-status": 2, "timeout": 1}


def test_a_handful_of_requests_never_settles_a_point() -> None:
    """Three windows of one request each agree perfectly, yet a p99 of three requests is no
    figure: the rule waits for enough successful requests per window and per point."""
    one = Window(start_s=0.0, end_s=1.0, requests=1, ok=1, rps=1.0, p50_ms=1.0, p99_ms=1.0)
    assert not is_stable([one, one, one])
    assert "fewer than 100" in str(Stability().too_few([one, one, one]))
    full = one.model_copy(update={"requests": 200, "ok": 200, "rps": 200.0})
    assert is_stable([full, full, full])  # 600 successful requests: enough for a p99
    two = one.model_copy(update={"requests": 160, "ok": 150, "rps": 160.0})
    assert not is_stable([two, two, two])  # 450 < 459 for the point
    assert "450 successful requests" in str(Stability().too_few([two, two, two]))
    assert is_stable([two, two, two], Stability(min_point_ok=450))


def test_a_tail_percentile_needs_enough_samples_to_be_bounded() -> None:
    """0.99^459 <= 0.01: with 458 samples nothing bounds the p99 at 99 % confidence, with 459
    the largest one does; p99.9 needs 4,603."""
    assert samples_to_bound(0.99) == 459
    assert samples_to_bound(0.999) == 4603
    assert math.isnan(quantile_upper_bound(np.arange(1.0, 459.0), 0.99))
    assert quantile_upper_bound(np.arange(1.0, 460.0), 0.99) == 459.0
    assert math.isnan(quantile_upper_bound(np.arange(1.0, 4603.0), 0.999))


def test_the_tail_bound_lies_above_the_percentile_by_the_binomial_margin() -> None:
    """10,000 samples 1..10,000: about 100 lie above the true p99, give or take 10; the 99 %
    bound is the order statistic 2.3 standard deviations further up."""
    values = np.arange(1.0, 10_001.0)
    bound = quantile_upper_bound(values, 0.99)
    assert np.percentile(values, 99) < bound
    assert 9_915 <= bound <= 9_930
    assert quantile_upper_bound(values[::-1].copy(), 0.99) == bound  # order does not matter
