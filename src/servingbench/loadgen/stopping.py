"""When a point has measured enough: windows until the last ones agree, or a cap.

The controller runs where the records are collected (the master, or the only Locust process).
The first request's send time is t0; the measured interval starts at t0 + warm-up, and windows
are anchored there. At each window's end it has every load-generating process ship what it
recorded (`flush`), waits a short settle for those records to arrive, then applies
`runs.stats.is_stable`; when the last windows agree, or the cap is reached, the interval ends at
that window's end and the test is stopped. Load goes on until Locust stops it, so the stop
itself never disturbs the measured interval; requests sent after its end are not counted.

The server's metrics are scraped twice, not at every window: just before the interval starts
(in the warm-up) and once the stop is decided, so the scrape never loads the server being
measured inside its interval; the difference spans the interval and a few hundred
milliseconds around it, which stage means (per request) do not mind.

Windows are accumulated incrementally as chunks arrive, so judging one costs a percentile over
that window's latencies only: the controller shares a core with the load it measures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Literal

import gevent
import numpy as np

from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.stats import MeasurePlan, Window, is_stable

__all__ = ["PointController", "StopReason", "WindowAccumulator"]

log = logging.getLogger(__name__)

StopReason = Literal["converged", "cap", "stopped", "no-requests"]
SCRAPE_LEAD_S = 0.1
"""The `from` scrape comes this long before the interval (at most half the warm-up)."""


@dataclass
class _Bucket:
    count: int = 0
    ok_latency: list[np.ndarray] = field(default_factory=list)


class WindowAccumulator:
    """Completions bucketed by window as records arrive (collector clock, absolute ns)."""

    def __init__(self, from_ns: int, window_s: float) -> None:
        self.from_ns = from_ns
        self.step = round(window_s * 1e9)
        self.window_s = window_s
        self._buckets: dict[int, _Bucket] = {}

    def add(self, records: RequestRecords) -> None:
        finished = records.finished
        done = records.done_ns[finished]
        index = (done - self.from_ns) // self.step
        keep = index >= 0
        if not keep.any():
            return
        index = index[keep]
        ok = (records.outcome[finished] == Outcome.OK)[keep]
        response = records.response_ns[finished][keep]
        for i in np.unique(index):
            bucket = self._buckets.setdefault(int(i), _Bucket())
            mine = index == i
            bucket.count += int(mine.sum())
            bucket.ok_latency.append(response[mine & ok])

    def window(self, i: int) -> Window:
        bucket = self._buckets.get(i, _Bucket())
        ok = np.concatenate([np.empty(0, np.int64), *bucket.ok_latency])
        p50, p99 = np.percentile(ok, (50, 99)) / 1e6 if ok.size else (np.nan, np.nan)
        lo = self.from_ns + i * self.step
        return Window(
            start_s=lo / 1e9,
            end_s=(lo + self.step) / 1e9,
            requests=bucket.count,
            ok=int(ok.size),
            rps=bucket.count / self.window_s,
            p50_ms=float(p50),
            p99_ms=float(p99),
        )


def _warm_up() -> None:
    """Pay numpy's first-call costs (lazy imports inside `np.unique`) before measuring,
    not while a window's records arrive."""
    ns = np.arange(4, dtype=np.int64)
    sample = RequestRecords(ns, ns, np.zeros(4, np.int8), ns, ns, 0, 0)
    accumulator = WindowAccumulator(0, 1e-9)
    accumulator.add(sample)
    accumulator.window(0)


class PointController:
    """Ends the measured interval when the windows agree or at the cap, then stops the test."""

    def __init__(
        self,
        plan: MeasurePlan,
        first_start_ns: Callable[[], int | None],
        backlog: Callable[[], RequestRecords],
        stop_test: Callable[[], None],
        scrape: Callable[[], str | None] | None = None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.plan = plan
        self._scrape = scrape
        self._flush = flush
        self.scrapes: dict[str, str] = {}
        """`from` and `to`: the server's metrics just before the interval and after its end."""
        self._first_start_ns = first_start_ns
        self._backlog = backlog
        self._stop_test = stop_test
        self.t0_ns: int | None = None
        self.from_ns: int | None = None
        self.to_ns: int | None = None
        self.windows: list[Window] = []
        self.reason: StopReason | None = None
        self.accumulator: WindowAccumulator | None = None
        self._greenlet: gevent.Greenlet[Any, Any] | None = None
        _warm_up()

    @property
    def converged(self) -> bool | None:
        return None if self.reason is None else self.reason == "converged"

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def on_chunk(self, records: RequestRecords) -> None:
        """Called by the collector for each chunk (already on its clock)."""
        if self.accumulator is not None:
            self.accumulator.add(records)

    def _sleep_until(self, t_ns: int) -> None:
        gevent.sleep(max(0.0, (t_ns - perf_counter_ns()) / 1e9))

    def _run(self) -> None:
        plan = self.plan
        while (t0 := self._first_start_ns()) is None:
            gevent.sleep(0.05)
        self.t0_ns = t0
        self.from_ns = t0 + round(plan.warmup_s * 1e9)
        self.accumulator = WindowAccumulator(self.from_ns, plan.window_s)
        # what arrived before the interval was known; no chunk can come in between (no yield)
        self.accumulator.add(self._backlog())
        lead = round(min(SCRAPE_LEAD_S, plan.warmup_s / 2) * 1e9)
        self._take_scrape("from", self.from_ns - lead)
        step = self.accumulator.step
        settle = round(plan.settle_s * 1e9)
        cap = round(plan.max_duration_s * 1e9)
        while True:
            end = self.from_ns + (len(self.windows) + 1) * step
            self._sleep_until(end)
            if self._flush is not None:
                self._flush()  # every process ships what it has: the window is complete
            self._sleep_until(end + settle)
            self.windows.append(self.accumulator.window(len(self.windows)))
            if plan.until_stable and is_stable(self.windows, plan.stability):
                self.reason = "converged"
            elif end - self.from_ns >= cap:
                self.reason = "cap"
            if self.reason is not None:
                self.to_ns = end
                log.info("point %s after %d windows", self.reason, len(self.windows))
                self._take_scrape("to", end)
                self._stop_test()
                return

    def _take_scrape(self, which: str, at_ns: int) -> None:
        """The server's metrics at `at_ns` (or now, if later), when there is an endpoint."""
        if self._scrape is None:
            return
        self._sleep_until(at_ns)
        text = self._scrape()
        if text is None:
            self.scrapes.pop(which, None)  # a stale scrape would describe another interval
        else:
            self.scrapes[which] = text

    def stopped(self, now_ns: int) -> None:
        """Locust stopped the test before the controller did (`-t`, Ctrl-C, web UI)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self.reason is not None:
            return
        if self.from_ns is None:
            self.reason = "no-requests"
            return
        self.reason = "stopped"
        self.to_ns = max(self.from_ns, now_ns)
