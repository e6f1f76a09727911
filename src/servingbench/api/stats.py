"""Per-route request latency over a bounded recent window, for `GET /stats`.

A preallocated ring buffer per route: recording is one array store, and percentiles are
computed by numpy only when someone asks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LatencyStats", "LatencyWindow"]


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
