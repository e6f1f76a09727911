"""What the service tells about itself: a recent-latency window (`/stats`), Prometheus metrics
(`/metrics`), and the middleware that times every request.

Counting costs the hot path as little as possible: `/stats` keeps a preallocated ring buffer per
route (one array store per request, percentiles computed by numpy only when asked), and
Prometheus metrics are plain Python ints turned into metric families only when `/metrics` is
scraped (a custom collector), instead of `Counter.inc()`/`Histogram.observe()` taking a lock and
walking the buckets on every request. Everything runs on the event loop's thread, so no lock is
needed. With several uvicorn workers each process counts its own requests (no multiprocess
mode). The timing middleware is pure ASGI (BaseHTTPMiddleware costs far more per request); it
records under the matched route's template, so there is one series per endpoint, not per URL.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate
from time import perf_counter
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "LATENCY_BUCKETS",
    "LatencyStats",
    "LatencyWindow",
    "Metrics",
    "RouteRecorder",
    "TimingMiddleware",
    "UNMATCHED",
]

# --- /stats: recent latency -------------------------------------------------------------------

class LatencyWindow:
    """The last `size` latencies of one route (seconds), plus an all-time count."""

    def __init__(self, size: int) -> None:
        self._values = np.zeros(size, dtype=np.float64)
        self._size = size
        self.total = 0

    def add(self, seconds: float) -> None:
        self._values[self.total % self._size] = seconds
        self.total += 1

    def summary(self) -> dict[str, Any]:
        """count/min/max/avg/p50/p95/p99 in milliseconds over the window (None when empty)."""
        window = self._values[: min(self.total, self._size)] * 1000.0
        out: dict[str, Any] = {"total": self.total, "count": int(window.size)}
        if window.size == 0:
            return out | dict.fromkeys(("min_ms", "max_ms", "avg_ms", "p50_ms", "p95_ms", "p99_ms"))
        p50, p95, p99 = np.percentile(window, [50, 95, 99])
        return out | {
            "min_ms": float(window.min()),
            "max_ms": float(window.max()),
            "avg_ms": float(window.mean()),
            "p50_ms": float(p50),
            "p95_ms": float(p95),
            "p99_ms": float(p99),
        }


class LatencyStats:
    """A `LatencyWindow` per route template, created on first request."""

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self._routes: dict[str, LatencyWindow] = {}

    def add(self, route: str, seconds: float) -> None:
        window = self._routes.get(route)
        if window is None:
            window = self._routes[route] = LatencyWindow(self.window)
        window.add(seconds)

    def summary(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "routes": {route: w.summary() for route, w in sorted(self._routes.items())},
        }


# --- /metrics: Prometheus ---------------------------------------------------------------------

# Our latencies are around a millisecond: buckets from 0.25 ms to 2.5 s.
LATENCY_BUCKETS = (
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_LE = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]


class _Latency:
    """One route's histogram: a count per bucket (the last is +Inf) and the sum."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # `le` is inclusive
        self.sum += seconds


class Metrics:
    """Requests by route and status, request latency by route, rows predicted by model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Latency] = {}
        self._rows: dict[str, int] = {}
        self.registry.register(self)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _Latency()
        latency.observe(seconds)

    def add_rows(self, model: str, rows: int) -> None:
        self._rows[model] = self._rows.get(model, 0) + rows

    def collect(self) -> Iterator[Metric]:
        """The families at scrape time (the registry calls this; `describe` defaults to it)."""
        requests = CounterMetricFamily(
            "servingbench_api_requests",
            "HTTP requests by route template and status code.",
            labels=["route", "status"],
        )
        for (route, status), count in sorted(self._requests.items()):
            requests.add_metric([route, str(status)], count)
        latency = HistogramMetricFamily(
            "servingbench_api_request_duration_seconds",
            "Time from request start to the last response byte, by route template.",
            labels=["route"],
        )
        for route, series in sorted(self._latency.items()):
            buckets = list(zip(_LE, accumulate(series.counts), strict=True))
            latency.add_metric([route], buckets, series.sum)
        rows = CounterMetricFamily(
            "servingbench_api_rows_predicted", "Rows predicted, by model.", labels=["model"]
        )
        for model, count in sorted(self._rows.items()):
            rows.add_metric([model], count)
        yield from (requests, latency, rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# --- timing middleware ------------------------------------------------------------------------

UNMATCHED = "(unmatched)"


RouteRecorder = Callable[[str, int, float], None]
"""`(route template, status, seconds)` -> None: `ServiceState.record`."""


class TimingMiddleware:
    """Feed each request's route, status and latency to `record` (stats window, Prometheus)."""

    def __init__(self, app: ASGIApp, record: RouteRecorder) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = perf_counter() - start
            # FastAPI's router stores the matched route in the (shared) scope.
            route = scope.get("route")
            self.record(getattr(route, "path", UNMATCHED), status, elapsed)
