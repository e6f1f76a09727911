"""Pure ASGI middleware timing every HTTP request (BaseHTTPMiddleware costs far more per request).

Latency is measured from the request's arrival at the app to the last response byte handed
to the server, and recorded under the matched route's template (`/v2/models/{name}/infer`),
so /stats and /metrics have one series per endpoint, not per URL.
"""

from __future__ import annotations

from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servingbench.api.metrics import Metrics
from servingbench.api.stats import LatencyStats

__all__ = ["UNMATCHED", "TimingMiddleware"]

UNMATCHED = "(unmatched)"


class TimingMiddleware:
    """Feed each request's latency and status to the stats window and Prometheus (if enabled)."""

    def __init__(self, app: ASGIApp, stats: LatencyStats, metrics: Metrics | None) -> None:
        self.app = app
        self.stats = stats
        self.metrics = metrics

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
            path = getattr(route, "path", UNMATCHED)
            self.stats.add(path, elapsed)
            if self.metrics is not None:
                self.metrics.observe_request(path, status, elapsed)
