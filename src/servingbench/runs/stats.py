"""Statistics over raw records: percentiles with numpy, throughput windows, the stability rule.

Pure functions on arrays, so the sweep, the report and the notebook compute the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from servingbench.runs.records import RequestRecords

__all__ = [
    "PERCENTILES",
    "LatencySummary",
    "Window",
    "is_stable",
    "summarize",
    "windows",
]

PERCENTILES = (25, 50, 90, 95, 99)
STABILITY_TOLERANCE = 0.10  # perf_analyzer: last windows agree within 10 %
STABILITY_WINDOWS = 3


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
    """Throughput and median latency of the requests *completed* inside [start_s, end_s)."""

    start_s: float
    end_s: float
    requests: int
    rps: float
    p50_ms: float


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
        ok = mask & r.ok
        p50 = float(np.median(r.latency_ns[ok]) / 1e6) if ok.any() else float("nan")
        n = int(mask.sum())
        result.append(Window(lo, hi, n, n / window_s, p50))
    return result


def is_stable(
    wins: list[Window],
    tolerance: float = STABILITY_TOLERANCE,
    last: int = STABILITY_WINDOWS,
) -> bool:
    """perf_analyzer's rule: the last `last` windows agree within `tolerance` on throughput and p50.

    Agreement is measured as (max - min) / mean for each quantity. Fewer windows than `last`
    cannot show stability.
    """
    if len(wins) < last:
        return False
    tail = wins[-last:]
    for values in ([w.rps for w in tail], [w.p50_ms for w in tail]):
        arr = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(arr)) or arr.mean() <= 0:
            return False
        if (arr.max() - arr.min()) / arr.mean() > tolerance:
            return False
    return True
