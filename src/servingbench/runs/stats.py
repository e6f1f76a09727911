"""Statistics over raw records: percentiles with numpy, throughput windows, the stability rule.

Pure functions on arrays, so the load generator's stopping rule, the sweep, the report and the
notebook compute the same numbers (one definition each of the measured population, the window,
the error counts and the stability test).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from servingbench.runs.records import Outcome, RequestRecords
from servingbench.runs.schema import Record

__all__ = [
    "PERCENTILES",
    "TAIL_CONFIDENCE",
    "LatencySummary",
    "MeasurePlan",
    "Stability",
    "Window",
    "is_stable",
    "outcome_counts",
    "quantile_upper_bound",
    "relative_spread",
    "samples_to_bound",
    "summarize",
    "windows",
]

PERCENTILES = (25, 50, 90, 95, 99, 99.9)
TAIL_CONFIDENCE = 0.99
"""Confidence of the upper bound a tail percentile needs to count (MLPerf LoadGen's 99 %)."""


def quantile_upper_bound(
    values: np.ndarray, q: float, confidence: float = TAIL_CONFIDENCE
) -> float:
    """An upper bound on the true q-quantile at `confidence`, from the order statistics of
    `values`; NaN when there are too few to bound it (a figure such as p99 then rests on too
    few samples past it to be read as more than a guess).

    The number Z of samples above the true quantile is Binomial(n, 1 - q). The largest order
    statistic index whose value is at least the quantile with probability `confidence` is
    n - m + 1 for the largest m with P(Z >= m) >= confidence; no such m >= 1 exists while
    1 - q^n < confidence (for p99 at 99 %: fewer than 459 samples).
    """
    n = int(values.size)
    p = 1.0 - q
    if n == 0 or p <= 0:
        return float("nan")
    below = 0.0  # P(Z <= m - 1), summed term by term while it leaves >= confidence above
    m = 0
    log_p, log_q = math.log(p), math.log1p(-p)
    while m < n:
        term = math.exp(
            math.lgamma(n + 1) - math.lgamma(m + 1) - math.lgamma(n - m + 1)
            + m * log_p + (n - m) * log_q
        )  # fmt: skip
        if 1.0 - (below + term) < confidence:
            break
        below += term
        m += 1
    if m == 0:
        return float("nan")
    return float(np.partition(values, n - m)[n - m])


def samples_to_bound(q: float, confidence: float = TAIL_CONFIDENCE) -> int:
    """The fewest samples that can bound the q-quantile at all: 1 - q^n >= confidence."""
    return math.ceil(math.log(1.0 - confidence) / math.log(q))


def _name(p: float) -> str:
    return f"p{str(p).replace('.', '')}_ms" if p != int(p) else f"p{int(p)}_ms"


class LatencySummary(Record):
    """One point's figures over its measured requests; latencies in ms.

    Latency is response time (completion minus intended start, which in a closed loop is the
    actual start) of successful requests. `service_*` is completion minus actual start, and
    `lateness_*` actual minus intended start: the generator's own delay (open loop).
    """

    requests: int = Field(description="requests sent that were meant to start in the interval")
    ok: int
    errors: int = Field(description="requests that failed (any outcome but ok and incomplete)")
    incomplete: int = Field(description="requests still in flight when the point stopped")
    dropped: int = Field(description="open loop: arrivals in the interval never sent (no slot)")
    error_rate: float = Field(description="(errors + incomplete) / requests")
    duration_s: float = Field(description="the measured interval's length")
    rps: float = Field(description="completions in the measured interval per second")
    ok_rps: float
    avg_ms: float
    min_ms: float
    max_ms: float
    p25_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    service_avg_ms: float
    service_p50_ms: float
    service_p99_ms: float
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    effective_concurrency: float = Field(
        description="rps x mean latency of the same finished requests, failed ones included "
        "(Little's law): requests in flight on average"
    )


def _percentiles_ms(latency_ns: np.ndarray) -> dict[str, float]:
    if latency_ns.size == 0:
        return {_name(p): float("nan") for p in PERCENTILES}
    values = np.percentile(latency_ns, PERCENTILES) / 1e6
    return {_name(p): float(v) for p, v in zip(PERCENTILES, values, strict=True)}


def _stat(values_ns: np.ndarray, fn: str) -> float:
    if values_ns.size == 0:
        return float("nan")
    return float(getattr(np, fn)(values_ns) / 1e6)


def outcome_counts(records: RequestRecords, *, include_ok: bool = False) -> dict[str, int]:
    """Measured requests per outcome label, in `Outcome` order; failures only by default."""
    measured = records.measured()
    codes, counts = np.unique(measured.outcome, return_counts=True)
    return {
        Outcome(int(code)).label: int(count)
        for code, count in zip(codes, counts, strict=True)
        if include_ok or code != Outcome.OK
    }


def summarize(records: RequestRecords) -> LatencySummary:
    """The figures of one point (see `runs.records` for which requests count where)."""
    measured = records.measured()
    dropped = int(np.count_nonzero(measured.outcome == Outcome.DROPPED))
    r = measured.select(measured.outcome != Outcome.DROPPED)
    n = len(r)
    ok = r.ok
    response = r.response_ns[ok]
    service = r.latency_ns[ok]
    lateness = (r.start_ns - r.intended_ns)[r.outcome != Outcome.INCOMPLETE]
    incomplete = int(np.count_nonzero(r.outcome == Outcome.INCOMPLETE))
    duration_s = records.duration_s
    completed = records.completed_measured()
    rps = int(completed.sum()) / duration_s if duration_s > 0 else float("nan")
    ok_rps = int((completed & records.ok).sum()) / duration_s if duration_s > 0 else float("nan")
    avg_ms = _stat(response, "mean")
    # Little's law over one population: rps counts every finished request, so does the mean
    finished_avg_ms = _stat(r.response_ns[r.finished], "mean")
    service_p50, service_p99 = (
        (float(v) / 1e6 for v in np.percentile(service, (50, 99)))
        if service.size
        else (float("nan"), float("nan"))
    )
    late_p50, late_p99 = (
        (float(v) / 1e6 for v in np.percentile(lateness, (50, 99)))
        if lateness.size
        else (float("nan"), float("nan"))
    )
    return LatencySummary(
        requests=n,
        ok=int(ok.sum()),
        errors=n - int(ok.sum()) - incomplete,
        incomplete=incomplete,
        dropped=dropped,
        error_rate=(n - int(ok.sum())) / n if n else float("nan"),
        duration_s=duration_s,
        rps=rps,
        ok_rps=ok_rps,
        avg_ms=avg_ms,
        min_ms=_stat(response, "min"),
        max_ms=_stat(response, "max"),
        **_percentiles_ms(response),
        service_avg_ms=_stat(service, "mean"),
        service_p50_ms=service_p50,
        service_p99_ms=service_p99,
        lateness_p50_ms=late_p50,
        lateness_p99_ms=late_p99,
        lateness_max_ms=_stat(lateness, "max"),
        effective_concurrency=rps * finished_avg_ms / 1e3
        if np.isfinite(finished_avg_ms)
        else float("nan"),
    )


class Window(Record):
    """Throughput, median and p99 response time of the requests completed in [start_s, end_s).

    Seconds count from the point's t0; latencies are of the window's `ok` successful requests,
    NaN when it has none.
    """

    start_s: float
    end_s: float
    requests: int
    ok: int = 0
    rps: float
    p50_ms: float
    p99_ms: float


def windows(records: RequestRecords, window_s: float, end_ns: int | None = None) -> list[Window]:
    """Consecutive whole windows from the start of the measured interval, by completion time.

    They end at the measured interval's end (or `end_ns`, for a point still running); a
    trailing partial window would understate throughput, so it is left out.
    """
    if window_s <= 0:
        return []
    step = round(window_s * 1e9)
    end = records.to_ns if end_ns is None else end_ns
    count = max(0, (end - records.from_ns) // step)
    done = records.done_ns
    finished = records.finished
    result = []
    for i in range(int(count)):
        lo = records.from_ns + i * step
        hi = lo + step
        mask = (done >= lo) & (done < hi) & finished
        ok_ns = records.response_ns[mask & records.ok]
        p50, p99 = np.percentile(ok_ns, (50, 99)) / 1e6 if ok_ns.size else (np.nan, np.nan)
        n = int(mask.sum())
        result.append(Window(start_s=lo / 1e9, end_s=hi / 1e9, requests=n, ok=int(ok_ns.size),
                             rps=n / window_s, p50_ms=float(p50), p99_ms=float(p99)))  # fmt: skip
    return result


def relative_spread(values: list[float]) -> float:
    """(max - min) / mean of the finite values: how much windows disagree on one quantity.

    NaN when fewer than two values are finite or their mean is not positive: no spread can be
    seen then.
    """
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if arr.size < 2 or arr.mean() <= 0:
        return float("nan")
    return float((arr.max() - arr.min()) / arr.mean())


class Stability(Record):
    """When a point has measured long enough: perf_analyzer's rule, with p99 added.

    The last `windows` windows must agree, each quantity within its own tolerance (relative
    spread, (max - min) / mean). p99 over a 1 s window rests on a few dozen samples at low
    load, so it gets a wider tolerance than req/s and p50. A p99 is a figure only with enough
    samples behind it, so a window counts only with `min_window_ok` successful requests, and
    the point only once it has `min_point_ok` (a p99 bounded at 99 % confidence needs 459,
    0.99^459 <= 0.01): a point at a low rate runs to its cap instead of settling on a handful.
    """

    windows: int = Field(default=3, ge=2, description="how many last windows must agree")
    rps: float = Field(default=0.10, gt=0, description="tolerance on req/s")
    p50: float = Field(default=0.10, gt=0, description="tolerance on median latency")
    p99: float = Field(default=0.25, gt=0, description="tolerance on p99 latency")
    min_window_ok: int = Field(
        default=100, ge=1, description="successful requests a window needs to count"
    )
    min_point_ok: int = Field(
        default=459, ge=1, description="successful requests the point needs before it can settle"
    )

    def spreads(self, wins: list[Window]) -> dict[str, float]:
        """The relative spread of each quantity over the last `windows` windows."""
        tail = wins[-self.windows :]
        return {
            "rps": relative_spread([w.rps for w in tail]),
            "p50": relative_spread([w.p50_ms for w in tail]),
            "p99": relative_spread([w.p99_ms for w in tail]),
        }

    def too_few(self, wins: list[Window]) -> str | None:
        """Why the samples cannot show stability yet (None when they are enough)."""
        thin = [w for w in wins[-self.windows :] if w.ok < self.min_window_ok]
        if thin:
            return (
                f"{len(thin)} of the last {self.windows} windows had fewer than "
                f"{self.min_window_ok} successful requests (fewest {min(w.ok for w in thin)})"
            )
        total = sum(w.ok for w in wins)
        if total < self.min_point_ok:
            return f"{total} successful requests, fewer than the {self.min_point_ok} a p99 needs"
        return None


def is_stable(wins: list[Window], rule: Stability | None = None) -> bool:
    """True when the last windows agree within the tolerances on req/s, p50 and p99.

    Fewer windows than the rule asks for cannot show stability, nor can a window without a
    successful request (its latencies are NaN), nor too few successful requests
    (`Stability.too_few`).
    """
    rule = rule or Stability()
    if len(wins) < rule.windows:
        return False
    tail = wins[-rule.windows :]
    if not all(np.isfinite([w.rps, w.p50_ms, w.p99_ms]).all() for w in tail):
        return False
    if rule.too_few(wins) is not None:
        return False
    spreads = rule.spreads(wins)
    limits = {"rps": rule.rps, "p50": rule.p50, "p99": rule.p99}
    return all(spreads[k] <= limits[k] for k in limits)  # NaN compares False: not stable


class MeasurePlan(Record):
    """How long a point runs (from the sweep, through `SERVINGBENCH_LOAD_*`)."""

    warmup_s: float = Field(default=1.0, ge=0)
    window_s: float = Field(default=2.0, gt=0)
    stability: Stability = Field(default_factory=Stability)
    max_duration_s: float = Field(default=12.0, gt=0)
    until_stable: bool = Field(
        default=True, description="stop when the windows agree (else run to the cap or -t)"
    )
    settle_s: float = Field(
        default=0.3,
        ge=0,
        description="after a window's end and the flush of every process's records, how long "
        "to wait for them to arrive",
    )
