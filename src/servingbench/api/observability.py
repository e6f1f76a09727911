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

from servingbench.api.runners import Stages

__all__ = [
    "LATENCY_BUCKETS",
    "UNMATCHED",
    "LatencyStats",
    "LatencyWindow",
    "Metrics",
    "RouteRecorder",
    "TimingMiddleware",
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

LATENCY_BUCKETS = tuple(round(50e-6 * 1.25**n, 9) for n in range(56))
"""50 us to about 12 s, each bucket 25 % wider than the last: our stages take tens of
microseconds to milliseconds, and a percentile estimated from buckets (linear inside one) is
then within a few percent. Prometheus' default buckets start at 5 ms."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Histogram:
    """One series: a count per bucket (the last is +Inf) and the sum."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # `le` is inclusive
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        edges = [*map(floatToGoString, self.bounds), "+Inf"]
        return list(zip(edges, accumulate(self.counts), strict=True))


class Metrics:
    """Requests by route and status, the time of each stage of a request, rows predicted.

    Stages: the whole request by route (`request_duration`), and per model the wait for a
    batch or a worker thread (`queue_duration`), the model call (`model_duration`) and the rows
    in the call that answered each request (`batch_rows`).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._model: dict[str, _Histogram] = {}
        self._queue: dict[str, _Histogram] = {}
        self._batch: dict[str, _Histogram] = {}
        self._rows: dict[str, int] = {}
        self.registry.register(self)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _Histogram()
        latency.observe(seconds)

    def observe_stages(self, model: str, rows: int, stages: Stages) -> None:
        if model not in self._model:
            self._model[model], self._queue[model] = _Histogram(), _Histogram()
            self._batch[model] = _Histogram(BATCH_BUCKETS)
        self._model[model].observe(stages.model_s)
        self._queue[model].observe(stages.queue_s)
        self._batch[model].observe(stages.batch_rows)
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
            latency.add_metric([route], series.buckets(), series.sum)
        yield from (requests, latency)
        for name, help_text, table in (
            ("model_duration_seconds", "Model call answering each request, by model.", self._model),
            ("queue_duration_seconds", "Wait for a batch or thread before the call.", self._queue),
            ("batch_rows", "Rows in the model call that answered each request.", self._batch),
        ):
            family = HistogramMetricFamily(f"servingbench_api_{name}", help_text, labels=["model"])
            for model, series in sorted(table.items()):
                family.add_metric([model], series.buckets(), series.sum)
            yield family
        rows = CounterMetricFamily(
            "servingbench_api_rows_predicted", "Rows predicted, by model.", labels=["model"]
        )
        for model, count in sorted(self._rows.items()):
            rows.add_metric([model], count)
        yield rows

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
