"""Pure ASGI middleware timing every HTTP request (BaseHTTPMiddleware costs far more per request).

Latency is measured from the request's arrival at the app to the last response byte handed
to the server, and recorded under the matched route's template (`/v2/models/{name}/infer`),
so /stats and /metrics have one series per endpoint, not per URL.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["UNMATCHED", "Recorder", "TimingMiddleware"]

UNMATCHED = "(unmatched)"


Recorder = Callable[[str, int, float], None]
"""`(route template, status, seconds)` -> None: `ServiceState.record`."""


class TimingMiddleware:
    """Feed each request's route, status and latency to `record` (stats window, Prometheus)."""

    def __init__(self, app: ASGIApp, record: Recorder) -> None:
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
