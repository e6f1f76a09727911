"""Capacity under an SLO: the search's bracket and bisection, and how a probe is judged.

A probe meets the SLO only when no repeat failed and its latency quantiles, counting every
failed, unanswered or dropped request as infinitely late, are within the bounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servingbench.report import ReportSettings, load_run
from servingbench.report.document import Table as DocTable
from servingbench.report.document import build_document
from servingbench.report.openloop import capacity_table
from servingbench.report.tables import build_tables
from servingbench.report.verdict import verdict_sentences
from servingbench.runs.meta import CapacityRecord, RunMeta
from servingbench.runs.point import Flag, PointKey, PointResult
from servingbench.runs.records import UNKNOWN_NS, Outcome, RequestRecords
from servingbench.runs.slo import attempt_quantile_ms, parse_slo
from servingbench.sweep.capacity import Probe, Search, judge
from tests.synthetic_run import Series, Shape, constant, make_run

MS = 1_000_000


def _records(ok: int, dropped: int, latency_ms: float = 1.0) -> RequestRecords:
    """`ok` answered requests of `latency_ms`, then `dropped` arrivals never sent, all inside
    the measured interval [0, 10 s)."""
    n = ok + dropped
    intended = np.linspace(0, 9e9, n).astype(np.int64)
    outcome = np.array([Outcome.OK] * ok + [Outcome.DROPPED] * dropped, dtype=np.int8)
    latency = np.where(outcome == Outcome.OK, round(latency_ms * MS), 0).astype(np.int64)
    return RequestRecords(
        start_ns=intended.copy(),
        latency_ns=latency,
        outcome=outcome,
        intended_ns=intended,
        server_ns=np.full(n, UNKNOWN_NS, dtype=np.int64),
        from_ns=0,
        to_ns=10**10,
    )


def _point(rate: float, ok: bool = True) -> PointResult:
    key = PointKey(
        scenario="fastapi-rest", backend="fastapi", wire="predict-json", model="iris",
        rows_per_request=1, load="open", concurrency=64, rate=rate, arrivals="poisson",
    )  # fmt: skip
    from servingbench.runs.stats import MeasurePlan, summarize

    summary = summarize(_records(100, 0)) if ok else None
    return PointResult(
        point_id=key.point_id(), key=key, host="h", started_at="t", finished_at="t",
        status="ok" if ok else "failed", failure_reason=None if ok else "server died",
        plan=MeasurePlan(), timeout_s=1.0, summary=summary,
    )  # fmt: skip


def test_a_probe_that_drops_most_arrivals_misses_a_latency_bound() -> None:
    """75 % of the arrivals dropped, the rest answered in 1 ms: p99 is not 1 ms, it is the
    time of a request that never came back. `p99<=50ms` alone (no errors bound) must fail."""
    slo = parse_slo("p99<=50ms")
    records = _records(ok=250, dropped=750)
    assert attempt_quantile_ms(records, 0.99) == float("inf")
    probe = judge([_point(800.0)], [records], slo)
    assert not probe.met
    assert "more than 1 % of requests failed" in probe.why


def test_a_clean_probe_meets_it_and_a_failed_repeat_does_not() -> None:
    slo = parse_slo("p99<=50ms")
    assert judge([_point(100.0)], [_records(1000, 0)], slo) == Probe(100.0, True, "met")
    failed = judge([_point(100.0), _point(100.0, ok=False)], [_records(1000, 0), None], slo)
    assert not failed.met
    assert "1 repeat(s) failed: server died" in failed.why


def test_a_few_failures_count_only_as_far_as_the_quantile_reaches() -> None:
    """0.5 % dropped: p99 still falls on answered requests, p99.9 does not."""
    records = _records(ok=995, dropped=5, latency_ms=2.0)
    assert attempt_quantile_ms(records, 0.99) == pytest.approx(2.0)
    assert attempt_quantile_ms(records, 0.999) == float("inf")
    assert parse_slo("p99<=5ms").judge([records]) == (True, "met")
    met, why = parse_slo("p99.9<=5ms").judge([records])
    assert not met
    assert why.startswith("p99.9: more than 0.1 %")


def _search_until_done(capacity: float, start: float) -> Search:
    search = Search(start=start, floor=1.0, ceiling=100_000.0, precision=0.1)
    while (rate := search.next_rate()) is not None:
        search.record(Probe(rate, rate <= capacity, ""))
    return search


@pytest.mark.parametrize(("capacity", "start"), [(1000.0, 500.0), (1000.0, 5000.0), (37.0, 80.0)])
def test_search_brackets_then_bisects_to_the_precision(capacity: float, start: float) -> None:
    """Double while passing, halve while failing, then the geometric mean until the failing
    rate is within 10 % above the passing one; the capacity is framed by them."""
    search = _search_until_done(capacity, start)
    assert search.passing is not None
    assert search.failing is not None
    assert search.passing <= capacity < search.failing
    assert search.failing / search.passing - 1 <= 0.1
    rates = [p.rate for p in search.probes]
    assert rates[0] == start
    assert len(rates) == len(set(rates))  # never the same rate twice


def test_search_stops_at_its_floor_and_ceiling() -> None:
    everything = _search_until_done(1e9, 500.0)
    assert (everything.passing, everything.failing) == (100_000.0, None)
    nothing = _search_until_done(0.0, 500.0)
    assert (nothing.passing, nothing.failing) == (None, 1.0)


def test_report_states_the_search_s_answer_and_marks_flagged_capacity(tmp_path: Path) -> None:
    """A repeat at 400 req/s failed, so the search said 200 (fails at 400); the report must
    not re-judge from the repeats that ran and claim 400. The points at 200 were flagged:
    the capacity row carries the mark."""
    series = Series("fastapi-rest")

    def shape(one: Series, key: PointKey) -> Shape:
        flags: tuple[Flag, ...] = ("generator-late",) if key.rate == 200 else ()
        return Shape(latency_ms=1.0, failed=key.rate == 400 and key.repeat == 2, flags=flags)

    layout = make_run(
        tmp_path, series=(series,), levels=(), rates=(100, 200, 400), repeats=2, shape=shape,
        slo="p99<=50ms",
    )  # fmt: skip
    meta = RunMeta.read(layout.meta)
    meta.capacity = [
        CapacityRecord(series="fastapi-rest iris rows=1", capacity=200.0, limit=400.0, probes=[])
    ]
    meta.write(layout.meta)
    data = load_run(layout.root)
    (row,) = capacity_table(data, parse_slo("p99<=50ms")).itertuples()
    assert (row.capacity_rps, row.up_to, row.search) == (200.0, 400.0, "bracket and bisect")
    assert "generator-late" in str(row.flags)
    blocks = build_document(data, build_tables(data, ReportSettings()), [])
    (table,) = [b for b in blocks if isinstance(b, DocTable) and b.header[:2] == ("line", "result")]
    assert table.row_marked == (True,)
    assert table.rows[0][1] == "200 req/s (fails at 400)"


def test_without_a_search_each_rate_is_judged_as_the_search_would(tmp_path: Path) -> None:
    """Fixed rates, no search: a rate with a failed repeat does not count as met, nor one whose
    p99 rests on too few requests to bound it (150 over the synthetic 1.5 s at 100 req/s)."""

    def shape(one: Series, key: PointKey) -> Shape:
        return Shape(latency_ms=1.0, failed=key.rate == 1600 and key.repeat == 2)

    layout = make_run(
        tmp_path, series=(Series("fastapi-rest"),), levels=(), rates=(400, 800, 1600),
        repeats=2, shape=shape, slo="p99<=50ms",
    )  # fmt: skip
    (row,) = capacity_table(load_run(layout.root), parse_slo("p99<=50ms")).itertuples()
    assert (row.capacity_rps, row.up_to, row.search) == (800.0, 1600.0, "measured rates")

    thin = make_run(tmp_path, "thin", series=(Series("fastapi-rest"),), levels=(), rates=(100,),
                    repeats=2, slo="p99<=50ms", shape=constant(lambda _s, _k: 1.0))  # fmt: skip
    (row,) = capacity_table(load_run(thin.root), parse_slo("p99<=50ms")).itertuples()
    assert str(row.result).startswith("none: even 100 req/s missed it (p99 not bounded: ")


def test_an_slo_search_reports_its_capacity_not_the_closed_loop_one(tmp_path: Path) -> None:
    """An SLO run measures each server's closed-loop peak at one user count only: "most req/s
    with p99 within the bound" over that one level said "none" for every server beside the
    searched capacity (a run on 2026-12-06). The searched capacity is the answer; a closed-loop
    run keeps its own."""
    slow = Series("mlserver-grpc")

    def shape(one: Series, key: PointKey) -> Shape:
        return Shape(latency_ms=80.0 if key.load == "closed" else 2.0)

    searched = load_run(
        make_run(
            tmp_path, "slo", series=(Series("fastapi-rest"), slow), levels=(50,),
            rates=(100, 200), repeats=1, shape=shape, slo="p99<=50ms",
        ).root
    )  # fmt: skip
    closed = load_run(make_run(tmp_path, "closed", levels=(1, 10), repeats=2).root)
    for data, expected in ((searched, False), (closed, True)):
        tables = build_tables(data, ReportSettings())
        headings = [str(getattr(b, "text", "")) for b in build_document(data, tables, [])]
        verdict = verdict_sentences(data, tables)
        shown = any(h.startswith("Capacity: most req/s") for h in headings)
        said = any(s.startswith("Most req/s with p99") for s in verdict)
        assert (shown, said) == (expected, expected), data.meta.run_id
    assert verdict_sentences(searched, build_tables(searched, ReportSettings()))[0].startswith(
        "Highest arrival rate meeting p99<=50ms"
    )


def test_the_verdict_names_thin_tails_by_series_with_their_load_in_words(tmp_path: Path) -> None:
    """1 ms a request over the synthetic 1.5 s: 1,500 requests at 1 user, 6,000 at 4, 300 and
    600 at 200 and 400 req/s. The sentences group the points whose p99 (459) or p99.9 (4,603)
    they cannot bound by series, with the unit of their load, as the other sentences do."""
    layout = make_run(
        tmp_path, series=(Series("fastapi-rest"),), levels=(1, 4), rates=(200, 400),
        repeats=1, shape=constant(lambda _s, _k: 1.0), slo="p99<=50ms",
    )  # fmt: skip
    data = load_run(layout.root)
    thin = [s for s in verdict_sentences(data, build_tables(data, ReportSettings()))
            if "rests on too few requests" in s]  # fmt: skip
    title = "our FastAPI service predict-json"
    assert [s.split(" rests on")[0] for s in thin] == [
        f"The p99 of {title} at 200 req/s",
        f"The p99.9 of {title} at 1 user; {title} at 200 and 400 req/s",
    ]
