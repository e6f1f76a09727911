"""Statistics over raw records: percentiles with numpy, throughput windows, the stability rule.

Pure functions on arrays, so the sweep, the report and the notebook compute the same numbers
(one definition each of the window spread, the error counts and the measured window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from servingbench.runs.records import Outcome, RequestRecords

__all__ = [
    "DEFAULT_WINDOW_S",
    "PERCENTILES",
    "LatencySummary",
    "Window",
    "is_stable",
    "measured_span_s",
    "outcome_counts",
    "relative_spread",
    "summarize",
    "windows",
]

PERCENTILES = (25, 50, 90, 95, 99)
STABILITY_TOLERANCE = 0.10  # perf_analyzer: last windows agree within 10 %
STABILITY_WINDOWS = 3
DEFAULT_WINDOW_S = 2.0  # the sweep's default window; for old points that did not record theirs


@dataclass(frozen=True)
class LatencySummary:
    """One point's figures over its measured (post-warm-up) requests; latencies in ms."""

    requests: int
    ok: int
    errors: int
    error_rate: float
    duration_s: float
    rps: float
    ok_rps: float
    avg_ms: float
    min_ms: float
    max_ms: float
    p25_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _percentiles_ms(latency_ns: np.ndarray) -> dict[str, float]:
    if latency_ns.size == 0:
        return {f"p{p}_ms": float("nan") for p in PERCENTILES}
    values = np.percentile(latency_ns, PERCENTILES) / 1e6
    return {f"p{p}_ms": float(v) for p, v in zip(PERCENTILES, values, strict=True)}


def measured_span_s(records: RequestRecords, warmup_s: float) -> float:
    """The sweep's measured window: from the end of the warm-up to the last answer.

    `start_ns` counts from the point's t0, so the warm-up ends at `warmup_s`. Requests that
    started in the warm-up but ended after it still count towards the span's end.
    """
    if len(records) == 0:
        return 0.0
    end_ns = int(np.max(records.start_ns + records.latency_ns))
    return (end_ns - round(warmup_s * 1e9)) / 1e9


def outcome_counts(records: RequestRecords, *, include_ok: bool = False) -> dict[str, int]:
    """Post-warm-up requests per outcome label, in `Outcome` order; failures only by default."""
    measured = records.measured()
    codes, counts = np.unique(measured.outcome, return_counts=True)
    return {
        Outcome(int(code)).label: int(count)
        for code, count in zip(codes, counts, strict=True)
        if include_ok or code != Outcome.OK
    }


def summarize(records: RequestRecords, duration_s: float | None = None) -> LatencySummary:
    """Summary of the measured requests. Latency figures cover successful requests only.

    `duration_s` is the measured window's length; by default it spans first send to last
    completion of the measured requests.
    """
    r = records.measured()
    n = len(r)
    ok_lat = r.latency_ns[r.ok]
    if duration_s is None:
        duration_s = float((r.start_ns + r.latency_ns).max() - r.start_ns.min()) / 1e9 if n else 0.0
    errors = int(n - ok_lat.size)
    return LatencySummary(
        requests=n,
        ok=int(ok_lat.size),
        errors=errors,
        error_rate=errors / n if n else float("nan"),
        duration_s=duration_s,
        rps=n / duration_s if duration_s > 0 else float("nan"),
        ok_rps=ok_lat.size / duration_s if duration_s > 0 else float("nan"),
        avg_ms=float(ok_lat.mean() / 1e6) if ok_lat.size else float("nan"),
        min_ms=float(ok_lat.min() / 1e6) if ok_lat.size else float("nan"),
        max_ms=float(ok_lat.max() / 1e6) if ok_lat.size else float("nan"),
        **_percentiles_ms(ok_lat),
    )


@dataclass(frozen=True)
class Window:
    """Throughput, median and p99 latency of the requests *completed* inside [start_s, end_s).

    Latencies are of the window's successful requests; NaN when it has none (or, for p99, when
    the window was built without it).
    """

    start_s: float
    end_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float = float("nan")


def windows(records: RequestRecords, window_s: float) -> list[Window]:
    """Consecutive fixed windows over the measured period, by completion time.

    Only whole windows are returned: a trailing partial window would understate throughput.
    """
    r = records.measured()
    if len(r) == 0 or window_s <= 0:
        return []
    done_s = (r.start_ns + r.latency_ns) / 1e9
    begin = float(r.start_ns.min()) / 1e9
    count = int((float(done_s.max()) - begin) // window_s)
    result = []
    for i in range(count):
        lo, hi = begin + i * window_s, begin + (i + 1) * window_s
        mask = (done_s >= lo) & (done_s < hi)
        ok_ns = r.latency_ns[mask & r.ok]
        p50, p99 = np.percentile(ok_ns, (50, 99)) / 1e6 if ok_ns.size else (np.nan, np.nan)
        n = int(mask.sum())
        result.append(Window(lo, hi, n, n / window_s, float(p50), float(p99)))
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


def is_stable(
    wins: list[Window],
    tolerance: float = STABILITY_TOLERANCE,
    last: int = STABILITY_WINDOWS,
) -> bool:
    """perf_analyzer's rule: the last `last` windows agree within `tolerance` on throughput and p50.

    Agreement is `relative_spread` of each quantity. Fewer windows than `last` (or than two)
    cannot show stability, nor can a window without a successful request.
    """
    if len(wins) < last:
        return False
    tail = wins[-last:]
    for values in ([w.rps for w in tail], [w.p50_ms for w in tail]):
        if not all(np.isfinite(values)):
            return False
        spread = relative_spread(values)
        if not spread <= tolerance:  # NaN (no spread measurable) is not stable either
            return False
    return True
